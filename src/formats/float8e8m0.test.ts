import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { E8m0RoundMode } from './float8e8m0.js';
import { E8M0_MAX, E8M0_MIN, E8M0_NAN, decodeE8m0, encodeE8m0 } from './float8e8m0.js';

const MODES: readonly E8m0RoundMode[] = ['up', 'down', 'nearest'];

// 2^k for k in [-127, 127] by repeated exact doubling/halving (independent of the code's pow2).
const POWERS = new Float64Array(255);
POWERS[127] = 1;
for (let k = 1; k <= 127; k++) {
  POWERS[127 + k] = (POWERS[126 + k] as number) * 2;
  POWERS[127 - k] = (POWERS[128 - k] as number) / 2;
}

/**
 * Reference straight from the round_mode definitions, by search over the 255 finite codes:
 * up = smallest 2^k ≥ x, down = largest 2^k ≤ x, nearest = the closer, ties up. When no code
 * qualifies (the power the mode rounds to lies beyond 2^±127), saturate picks the end, else NaN.
 */
function reference(x: number, saturate: boolean, mode: E8m0RoundMode): number {
  if (Number.isNaN(x)) return E8M0_NAN;
  if (!(x > 0)) return saturate ? E8M0_MIN : E8M0_NAN; // 0, negatives (ONNX Runtime: below range)
  if (x === Infinity) return saturate ? E8M0_MAX : E8M0_NAN;
  const lowOut = saturate ? E8M0_MIN : E8M0_NAN;
  const highOut = saturate ? E8M0_MAX : E8M0_NAN;
  const min = POWERS[0] as number;
  const max = POWERS[254] as number;
  if (x < min) {
    // The next power below 2^-127 is 2^-128; only 'up' and 'nearest' can land on 2^-127.
    if (mode === 'up' && x > min / 2) return 0;
    if (mode === 'nearest' && x >= 0.75 * min) return 0;
    return lowOut;
  }
  if (x > max) {
    // Out of range is judged after rounding: 'down' keeps 2^127 below 2^128, 'nearest' below 1.5·2^127.
    if ((mode === 'down' && x < 2 * max) || (mode === 'nearest' && x < 1.5 * max)) return 254;
    return highOut;
  }
  let k = 0;
  while (k < 254 && (POWERS[k + 1] as number) <= x) k++; // 2^(k-127) ≤ x < 2^(k-126)
  const lo = POWERS[k] as number;
  if (x === lo || mode === 'down') return k;
  if (mode === 'up') return k + 1;
  return x >= 1.5 * lo ? k + 1 : k;
}

describe('float8e8m0', () => {
  it('decodes code c to 2^(c-127) for c in 0..254 and 0xFF to NaN', () => {
    for (let c = 0; c < 255; c++) expect(decodeE8m0(c)).toBe(POWERS[c]);
    expect(decodeE8m0(0)).toBe(2 ** -127);
    expect(decodeE8m0(127)).toBe(1);
    expect(decodeE8m0(254)).toBe(2 ** 127);
    expect(decodeE8m0(255)).toBeNaN();
  });

  it('every finite code round-trips in every round_mode and saturate mode', () => {
    for (let c = 0; c < 255; c++) {
      for (const mode of MODES)
        for (const saturate of [true, false]) expect(encodeE8m0(decodeE8m0(c), saturate, mode)).toBe(c);
    }
    expect(encodeE8m0(decodeE8m0(255))).toBe(E8M0_NAN);
  });

  it('Cast table "saturate + up": 0 → 0, NaN → NaN, Inf → MAX, above MAX → MAX, below MIN → MIN', () => {
    expect(encodeE8m0(0)).toBe(0);
    expect(encodeE8m0(NaN)).toBe(0xff);
    expect(encodeE8m0(Infinity)).toBe(0xfe);
    expect(encodeE8m0(2 ** 127 * 1.5)).toBe(0xfe);
    expect(encodeE8m0(1e300)).toBe(0xfe);
    expect(encodeE8m0(2 ** -140)).toBe(0);
    expect(encodeE8m0(5e-324)).toBe(0);
  });

  it('Cast table "non-saturate + nearest": 0, Inf, above MAX, below MIN all → NaN', () => {
    const enc = (x: number) => encodeE8m0(x, false, 'nearest');
    expect([enc(0), enc(NaN), enc(Infinity), enc(2 ** 127 * 1.5), enc(2 ** -129)]).toEqual([
      0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    expect(enc(2 ** 127 * 1.49)).toBe(0xfe); // rounds down onto MAX: in range
    expect(enc(2 ** -127 * 0.75)).toBe(0); // rounds up onto MIN (ties up): in range
  });

  it('round_mode at and around the linear midpoint 1.5·2^k', () => {
    expect(encodeE8m0(1.5, true, 'nearest')).toBe(128); // tie rounds up
    expect(encodeE8m0(nextBelow(1.5), true, 'nearest')).toBe(127);
    expect(encodeE8m0(1.0000001, true, 'up')).toBe(128);
    expect(encodeE8m0(1.9999999, true, 'down')).toBe(127);
    expect(encodeE8m0(0.124)).toBe(0x7c); // test_cast_e8m0_FLOAT_to_FLOAT8E8M0: 0.124 → 2^-3
    expect(encodeE8m0(1.1)).toBe(0x80);
  });

  it('matches the definition-by-search reference on random values in every mode', () => {
    const positive = fc
      .tuple(fc.double({ min: 1, max: 2, maxExcluded: true, noNaN: true }), fc.integer({ min: -135, max: 135 }))
      .map(([m, e]) => m * 2 ** e);
    for (const mode of MODES) {
      for (const saturate of [true, false]) {
        fc.assert(
          fc.property(positive, (x) => encodeE8m0(x, saturate, mode) === reference(x, saturate, mode)),
          { numRuns: 3000 },
        );
        fc.assert(
          fc.property(fc.double(), (x) => encodeE8m0(x, saturate, mode) === reference(x, saturate, mode)),
          { numRuns: 2000 },
        );
      }
    }
  });
});

function nextBelow(x: number): number {
  const f = new Float64Array([x]);
  const u = new BigUint64Array(f.buffer);
  u[0] = (u[0] as bigint) - 1n;
  return f[0] as number;
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFloat16, encodeFloat16, float16Table } from './float16.js';
import { fieldValue, magnitudeValues, midpoint, nearestEvenCode, nextDown, nextUp } from './reference.test-util.js';

// binary16: 5 exponent bits, bias 15, 10 mantissa bits; finite magnitudes are codes 0..0x7bff.
const MAGS = magnitudeValues(0x7c00, 10, 15);
const BEYOND = 65536; // what code 0x7c00 would be if it were finite

function reference(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const code = nearestEvenCode(Math.abs(x), MAGS, BEYOND);
  return sign | Math.min(code, 0x7c00);
}

describe('float16', () => {
  it('decodes every one of the 65536 codes to the value its sign/exponent/mantissa fields give', () => {
    for (let b = 0; b < 65536; b++) {
      const s = b >> 15;
      const e = (b >> 10) & 0x1f;
      const m = b & 0x3ff;
      const got = decodeFloat16(b);
      if (e === 31) {
        if (m === 0) expect(got).toBe(s ? -Infinity : Infinity);
        else expect(got).toBeNaN();
      } else {
        expect(Object.is(got, fieldValue(s, e, m, 10, 15))).toBe(true);
      }
      expect(Object.is(float16Table()[b], got)).toBe(true);
    }
  });

  it('spec anchors: max 65504, min normal 2^-14, min subnormal 2^-24, 1.0 = 0x3c00', () => {
    expect(decodeFloat16(0x7bff)).toBe(65504);
    expect(decodeFloat16(0x0400)).toBe(2 ** -14);
    expect(decodeFloat16(0x0001)).toBe(2 ** -24);
    expect(encodeFloat16(1)).toBe(0x3c00);
    expect(encodeFloat16(-2)).toBe(0xc000);
    expect(encodeFloat16(0.1)).toBe(0x2e66);
  });

  it('decode then encode is the identity on every non-NaN code; NaN codes encode to a NaN', () => {
    for (let b = 0; b < 65536; b++) {
      const v = decodeFloat16(b);
      const back = encodeFloat16(v);
      if (Number.isNaN(v)) expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true);
      else expect(back).toBe(b);
    }
  });

  it('specials: ±0, ±Inf, NaN, overflow to Inf at 65520 (the tie above 65504 goes to even = Inf)', () => {
    expect(encodeFloat16(0)).toBe(0);
    expect(encodeFloat16(-0)).toBe(0x8000);
    expect(encodeFloat16(Infinity)).toBe(0x7c00);
    expect(encodeFloat16(-Infinity)).toBe(0xfc00);
    expect(encodeFloat16(NaN)).toBe(0x7e00);
    expect(encodeFloat16(65519.99)).toBe(0x7bff);
    expect(encodeFloat16(65520)).toBe(0x7c00);
    expect(encodeFloat16(-1e300)).toBe(0xfc00);
    expect(encodeFloat16(2 ** -25)).toBe(0); // tie between 0 and the min subnormal → even (0)
    expect(encodeFloat16(nextUp(2 ** -25))).toBe(1);
    expect(encodeFloat16(-(2 ** -26))).toBe(0x8000);
    expect(encodeFloat16(5e-324)).toBe(0);
  });

  it('every midpoint between adjacent codes rounds to the even code; a hair either side rounds to the nearer', () => {
    for (let c = 0; c < 0x7bff; c++) {
      const lo = MAGS[c] as number;
      const hi = MAGS[c + 1] as number;
      const mid = midpoint(lo, hi);
      expect(encodeFloat16(mid)).toBe(c % 2 === 0 ? c : c + 1);
      expect(encodeFloat16(nextDown(mid))).toBe(c);
      expect(encodeFloat16(nextUp(mid))).toBe(c + 1);
      expect(encodeFloat16(-mid)).toBe(0x8000 | (c % 2 === 0 ? c : c + 1));
    }
  });

  it('rounds the exact double, not via float32 (no double rounding)', () => {
    // 1 + 2^-11 + 2^-40 is just above the fp16 midpoint; Math.fround would first drop 2^-40 to the tie.
    const x = 1 + 2 ** -11 + 2 ** -40;
    expect(Math.fround(x)).toBe(1 + 2 ** -11);
    expect(encodeFloat16(x)).toBe(0x3c01);
    expect(encodeFloat16(Math.fround(x))).toBe(0x3c00);
  });

  it('matches brute-force nearest-even search over all finite values for random doubles', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (x) => encodeFloat16(x) === reference(x)),
      { numRuns: 20000 },
    );
    fc.assert(
      fc.property(fc.double({ min: -70000, max: 70000, noNaN: true }), (x) => encodeFloat16(x) === reference(x)),
      { numRuns: 20000 },
    );
    fc.assert(
      fc.property(
        fc.double({ min: -(2 ** -13), max: 2 ** -13, noNaN: true }),
        (x) => encodeFloat16(x) === reference(x),
      ),
      { numRuns: 20000 },
    );
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (x) => encodeFloat16(x) === reference(x)),
      { numRuns: 20000 },
    );
  });
});

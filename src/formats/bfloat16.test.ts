import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBfloat16, encodeBfloat16 } from './bfloat16.js';
import { fieldValue, magnitudeValues, midpoint, nearestEvenCode, nextDown, nextUp } from './reference.test-util.js';

// bfloat16: 8 exponent bits, bias 127, 7 mantissa bits; finite magnitudes are codes 0..0x7f7f.
const MAGS = magnitudeValues(0x7f80, 7, 127);
const BEYOND = 2 ** 128; // what code 0x7f80 would be worth if it were finite

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The usual float32 → bfloat16 bit trick (add 0x7FFF plus the lowest kept bit, then truncate) is
 * an independent route to round-half-even for float32 inputs that are not NaN.
 */
function fromFloat32Bits(x: number): number {
  f32[0] = x;
  const u = u32[0] as number;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

describe('bfloat16', () => {
  it('decodes every one of the 65536 codes to the value its fields give', () => {
    for (let b = 0; b < 65536; b++) {
      const s = b >> 15;
      const e = (b >> 7) & 0xff;
      const m = b & 0x7f;
      const got = decodeBfloat16(b);
      if (e === 255) {
        if (m === 0) expect(got).toBe(s ? -Infinity : Infinity);
        else expect(got).toBeNaN();
      } else {
        expect(Object.is(got, fieldValue(s, e, m, 7, 127)), `code ${b}`).toBe(true);
      }
    }
  });

  it('decode then encode is the identity on every non-NaN code; NaN codes encode to a NaN', () => {
    for (let b = 0; b < 65536; b++) {
      const v = decodeBfloat16(b);
      const back = encodeBfloat16(v);
      if (Number.isNaN(v)) expect((back & 0x7f80) === 0x7f80 && (back & 0x7f) !== 0).toBe(true);
      else expect(back).toBe(b);
    }
  });

  it('specials: ±0, ±Inf, NaN, overflow past the midpoint above max goes to Inf', () => {
    expect(encodeBfloat16(0)).toBe(0);
    expect(encodeBfloat16(-0)).toBe(0x8000);
    expect(encodeBfloat16(1)).toBe(0x3f80);
    expect(encodeBfloat16(Infinity)).toBe(0x7f80);
    expect(encodeBfloat16(-Infinity)).toBe(0xff80);
    expect(encodeBfloat16(NaN)).toBe(0x7fc0);
    const top = midpoint(MAGS[0x7f7f] as number, BEYOND);
    expect(encodeBfloat16(nextDown(top))).toBe(0x7f7f);
    expect(encodeBfloat16(top)).toBe(0x7f80); // max's mantissa is odd: the tie goes up, to Inf
    expect(encodeBfloat16(-1e300)).toBe(0xff80);
    expect(encodeBfloat16(2 ** -134)).toBe(0); // half the smallest subnormal 2^-133: tie to 0
    expect(encodeBfloat16(nextUp(2 ** -134))).toBe(1);
  });

  it('rounds half to even, not by truncation', () => {
    expect(encodeBfloat16(1 + 2 ** -8)).toBe(0x3f80); // tie, 0x3f80 even
    expect(encodeBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, rounds up to even
    expect(encodeBfloat16(1 + 2 ** -8 + 2 ** -30)).toBe(0x3f81); // above the tie
  });

  it('every midpoint between adjacent finite codes rounds to the even code (sampled every 7th)', () => {
    for (let c = 0; c < 0x7f7f; c += 7) {
      const mid = midpoint(MAGS[c] as number, MAGS[c + 1] as number);
      expect(encodeBfloat16(mid)).toBe(c % 2 === 0 ? c : c + 1);
      expect(encodeBfloat16(nextDown(mid))).toBe(c);
      expect(encodeBfloat16(nextUp(mid))).toBe(c + 1);
    }
  });

  it('agrees with brute-force nearest-even for random doubles, and with the bit trick for floats', () => {
    const ref = (x: number) =>
      (x < 0 || Object.is(x, -0) ? 0x8000 : 0) | Math.min(0x7f80, nearestEvenCode(Math.abs(x), MAGS, BEYOND));
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (x) => encodeBfloat16(x) === ref(x)),
      { numRuns: 20000 },
    );
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (x) => encodeBfloat16(x) === fromFloat32Bits(x)),
      { numRuns: 50000 },
    );
  });
});

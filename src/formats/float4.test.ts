import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFloat4e2m1, encodeFloat4e2m1, float4e2m1Table } from './float4.js';
import { fieldValue, midpoint, nearestEvenCode, nextDown, nextUp } from './reference.test-util.js';

// float4.md, "Float4 type values": the eight magnitudes, indexed by the 3 low bits.
const SPEC_TABLE = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
const MAGS = Float64Array.from(SPEC_TABLE);

describe('float4e2m1', () => {
  it('decodes all 16 codes as the spec table and the field formula say', () => {
    for (let c = 0; c < 16; c++) {
      const s = c >> 3;
      const want = s ? -(SPEC_TABLE[c & 7] as number) : (SPEC_TABLE[c & 7] as number);
      expect(Object.is(decodeFloat4e2m1(c), want), `code ${c}`).toBe(true);
      expect(Object.is(fieldValue(s, (c >> 1) & 3, c & 1, 1, 1), want)).toBe(true);
      expect(Object.is(float4e2m1Table()[c], want)).toBe(true);
    }
  });

  it('decode then encode is the identity on all 16 codes (±0 included)', () => {
    for (let c = 0; c < 16; c++) expect(encodeFloat4e2m1(decodeFloat4e2m1(c))).toBe(c);
  });

  it('every midpoint rounds to the even code, a hair either side to the nearer', () => {
    for (let c = 0; c < 7; c++) {
      const mid = midpoint(MAGS[c] as number, MAGS[c + 1] as number);
      const even = c % 2 === 0 ? c : c + 1;
      expect(encodeFloat4e2m1(mid), `mid ${mid}`).toBe(even);
      expect(encodeFloat4e2m1(-mid)).toBe(8 | even);
      expect(encodeFloat4e2m1(nextDown(mid))).toBe(c);
      expect(encodeFloat4e2m1(nextUp(mid))).toBe(c + 1);
    }
    // Hand-worked: 0.25 → 0, 0.75 → 1.0, 1.75 → 2, 2.5 → 2, 3.5 → 4, 5 → 4.
    expect([0.25, 0.75, 1.75, 2.5, 3.5, 5].map(encodeFloat4e2m1)).toEqual([0, 2, 4, 4, 6, 6]);
  });

  it('Cast table: |x| > 6 and ±Inf saturate to ±6, ±0 keep their sign, NaN → +6', () => {
    expect(encodeFloat4e2m1(6.0000001)).toBe(7);
    expect(encodeFloat4e2m1(7)).toBe(7); // beyond the 6↔8 midpoint too: still 6
    expect(encodeFloat4e2m1(1e6)).toBe(7);
    expect(encodeFloat4e2m1(-9)).toBe(15);
    expect(encodeFloat4e2m1(Infinity)).toBe(7);
    expect(encodeFloat4e2m1(-Infinity)).toBe(15);
    expect(encodeFloat4e2m1(0)).toBe(0);
    expect(encodeFloat4e2m1(-0)).toBe(8);
    expect(encodeFloat4e2m1(NaN)).toBe(7);
    // Conformance values that agree with the spec (test_cast_FLOAT_to_FLOAT4E2M1):
    expect([0.48, 0.25, 1.05, -3.5, -8, 9, 1e6, 1e-7, -4, 0.01].map(encodeFloat4e2m1)).toEqual([
      1, 0, 2, 14, 15, 7, 7, 0, 14, 0,
    ]);
  });

  it('matches brute-force nearest-even (then saturation) for random doubles', () => {
    const ref = (x: number) => {
      const sign = x < 0 || Object.is(x, -0) ? 8 : 0;
      return sign | Math.min(7, nearestEvenCode(Math.abs(x), MAGS, 8));
    };
    fc.assert(
      fc.property(fc.double({ min: -8, max: 8, noNaN: true }), (x) => encodeFloat4e2m1(x) === ref(x)),
      { numRuns: 20000 },
    );
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (x) => encodeFloat4e2m1(x) === ref(x)),
      { numRuns: 5000 },
    );
  });
});

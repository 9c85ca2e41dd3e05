import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../quant/prng.js';
import {
  INT32_MAX,
  INT32_MIN,
  quantizeMultiplier,
  requantize,
  saturatingRoundingDoublingHighMul,
} from '../quant/requantize.js';
import { requantizeFast, saturatingRoundingDoublingHighMulFast } from './requantize.js';

const int32 = fc.integer({ min: INT32_MIN, max: INT32_MAX });
const EDGES = [
  INT32_MIN,
  INT32_MIN + 1,
  -(2 ** 30),
  -65537,
  -65536,
  -65535,
  -3,
  -1,
  0,
  1,
  3,
  65535,
  65536,
  2 ** 30,
  INT32_MAX - 1,
  INT32_MAX,
];

describe('saturatingRoundingDoublingHighMulFast', () => {
  it('is bit-identical to the reference on every pair of edge values', () => {
    for (const a of EDGES) {
      for (const b of EDGES) {
        expect(saturatingRoundingDoublingHighMulFast(a, b), `${a}·${b}`).toBe(saturatingRoundingDoublingHighMul(a, b));
      }
    }
  });

  it('is bit-identical to the reference on random pairs and on ties', () => {
    fc.assert(
      fc.property(int32, int32, (a, b) => {
        expect(saturatingRoundingDoublingHighMulFast(a, b)).toBe(saturatingRoundingDoublingHighMul(a, b));
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 19), max: 2 ** 19 - 1 }), fc.integer({ min: 0, max: 10 }), (k, s) => {
        const a = (2 * k + 1) * 2 ** s;
        const b = 2 ** (30 - s);
        expect(saturatingRoundingDoublingHighMulFast(a, b)).toBe(saturatingRoundingDoublingHighMul(a, b));
      }),
    );
  });
});

describe('requantizeFast', () => {
  it('is bit-identical to the reference on random accumulators, multipliers and code ranges', () => {
    const rand = mulberry32(29);
    const acc = new Int32Array(4096);
    for (let i = 0; i < acc.length; i++) acc[i] = (rand() * 2 ** 32) | 0;
    acc.set(EDGES, 0);
    const multipliers = [0, 2 ** -32, 1e-6, 0.0123, 0.25, 0.5, 0.75, 1 - 2 ** -53, 1, 3];
    for (let i = 0; i < 20; i++) multipliers.push(2 ** (-30 * rand()));
    for (const m of multipliers) {
      const { m0, shift } = quantizeMultiplier(m);
      // Left shifts wrap large accumulators; both paths must wrap the same way.
      const ref = requantize(acc, m0, shift, 3, -128, 127, new Int8Array(acc.length));
      const fast = requantizeFast(acc, m0, shift, 3, -128, 127, new Int8Array(acc.length));
      expect(Array.from(fast), `M = ${m}`).toEqual(Array.from(ref));
      const ref32 = requantize(acc, m0, shift, 0, INT32_MIN, INT32_MAX, new Int32Array(acc.length));
      const fast32 = requantizeFast(acc, m0, shift, 0, INT32_MIN, INT32_MAX, new Int32Array(acc.length));
      expect(Array.from(fast32), `M = ${m} (int32 out)`).toEqual(Array.from(ref32));
    }
  });
});

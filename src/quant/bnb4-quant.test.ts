import { describe, expect, it } from 'vitest';
import { sqnrDb } from './metrics.js';
import { normal } from './testdata.test-util.js';
import { dequantizeBnb4, quantizeBnb4, type Bnb4Options } from './bnb4-quant.js';
import { quantizeBnb4Reference } from './bnb4-reference.test-util.js';

describe('nf4 / fp4 quantizer: the fast paths give the reference bytes', () => {
  // Normal weights with outliers, an all-zero block, subnormal blocks (1/s overflows), exact
  // table values and a length that is not a multiple of the block.
  const n = 64 * 300 + 40;
  const w = normal(n, 7);
  for (let i = 0; i < n; i += 997) w[i] = (w[i] as number) * 40;
  w.fill(0, 128, 192);
  for (let i = 192; i < 256; i++) w[i] = (i % 3 - 1) * 2 ** -140;
  for (let i = 256; i < 320; i++) w[i] = (i - 288) * 1e-30;
  for (let i = 320; i < 336; i++) w[i] = [-1, 1, 0.5, -0.25, 1 / 12, 2 / 3][i % 6] as number;
  const cases: Bnb4Options[] = [];
  for (const type of ['nf4', 'fp4'] as const) {
    for (const blockSize of [16, 64, 256]) for (const rtn of [false, true]) cases.push({ type, blockSize, rtn });
    cases.push({ type, blockSize: 64, doubleQuant: true });
  }
  for (const o of cases) {
    it(`${o.type} block ${o.blockSize}${o.rtn ? ' rtn' : ''}${o.doubleQuant ? ' double-quant' : ''}: codes, packed bytes and constants equal; SQNR from its sums = from the dequantized copy`, () => {
      const fast = quantizeBnb4(w, o);
      const ref = quantizeBnb4Reference(w, o);
      expect(fast.absmax).toEqual(ref.absmax);
      expect(fast.codes).toEqual(ref.codes);
      expect(fast.packed).toEqual(ref.packed);
      expect(fast.doubleQuantBytes).toBe(ref.doubleQuantBytes);
      const db = 10 * Math.log10((fast.signalSq as number) / (fast.noiseSq as number));
      // Summed block by block, so equal up to the rounding of the regrouped sums.
      expect(db).toBeCloseTo(sqnrDb(w, dequantizeBnb4(ref, o.type, o.blockSize)), 9);
    });
  }
  it('names the first non-finite weight, as the reference does', () => {
    const bad = normal(200, 3);
    bad[150] = NaN;
    bad[170] = Infinity;
    expect(() => quantizeBnb4(bad, { type: 'nf4', blockSize: 64 })).toThrow(/NaN at output 0, input 150/);
    expect(() => quantizeBnb4Reference(bad, { type: 'nf4', blockSize: 64 })).toThrow(/NaN at output 0, input 150/);
  });
});

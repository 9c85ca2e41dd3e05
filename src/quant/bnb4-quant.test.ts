import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quantizeBlockwise } from './blockwise.js';
import { fp4BnbCodebook, nf4Codebook } from './codebook.js';
import { sqnrDb } from './metrics.js';
import { normal } from './testdata.test-util.js';
import { dequantizeBnb4, quantizeBnb4, type Bnb4Options, type Bnb4Type } from './bnb4-quant.js';
import { quantizeBnb4Reference } from './bnb4-reference.test-util.js';

describe('nf4 / fp4 quantizer: the fast paths give the reference bytes', () => {
  // Normal weights with outliers, an all-zero block, subnormal blocks (1/s overflows), exact
  // table values and a length that is not a multiple of the block.
  const n = 64 * 300 + 40;
  const w = normal(n, 7);
  for (let i = 0; i < n; i += 997) w[i] = (w[i] as number) * 40;
  w.fill(0, 128, 192);
  for (let i = 192; i < 256; i++) w[i] = ((i % 3) - 1) * 2 ** -140;
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

describe('nf4 / fp4 round-to-nearest = quantizeBlockwise (absmax codebook blocks), byte for byte', () => {
  const books = { nf4: nf4Codebook(), fp4: fp4BnbCodebook() };
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  function expectSame(w: Float32Array, type: Bnb4Type, blockSize: number): void {
    const ours = quantizeBnb4(w, { type, blockSize, rtn: true });
    const blockwise = quantizeBlockwise(w, books[type], { blockSize });
    expect(bytes(ours.absmax)).toEqual(bytes(blockwise.absmax));
    expect(ours.codes).toEqual(blockwise.codes);
  }

  /** The float32 next to v towards ±∞ (dir = ±1). */
  function nextFloat(v: number, dir: 1 | -1): number {
    if (v === 0) return dir * 2 ** -149;
    const f32 = Float32Array.of(v);
    const u = new Int32Array(f32.buffer);
    u[0] = (u[0] as number) + (v > 0 === dir > 0 ? 1 : -1);
    return f32[0] as number;
  }

  for (const type of ['nf4', 'fp4'] as const) {
    it(`${type}: random weights with outliers, blocks 16 / 64 / 256, a short last block`, () => {
      const w = normal(64 * 40 + 23, 11);
      for (let i = 5; i < w.length; i += 331) w[i] = (w[i] as number) * 25;
      for (const blockSize of [16, 64, 256]) expectSame(w, type, blockSize);
    });

    it(`${type}: zeros and signed zeros, subnormals (1/absmax overflows), float32 extremes, table values`, () => {
      const bs = 16;
      const blocks: number[][] = [
        Array(bs).fill(0),
        Array.from({ length: bs }, (_, i) => (i % 2 ? -0 : 0)),
        Array.from({ length: bs }, (_, i) => ((i % 5) - 2) * 2 ** -149),
        Array.from({ length: bs }, (_, i) => (i === 3 ? 2 ** -126 : ((i % 3) - 1) * 2 ** -140)),
        Array.from({ length: bs }, (_, i) => (i === 0 ? 3.4028234663852886e38 : ((i % 7) - 3) * 1e37)),
        Array.from({ length: bs }, (_, i) => (i === 1 ? -3.4028234663852886e38 : (i % 4) * 1e-38)),
        Array.from({ length: bs }, (_, i) => (i === 2 ? 1e-30 : 0)),
        Array.from({ length: bs }, (_, i) => (books[type].values[i] as number) * 3),
        Array.from({ length: bs }, () => -2.5),
      ];
      expectSame(Float32Array.from(blocks.flat()), type, bs);
    });

    it(`${type}: values on and one float32 step beside every midpoint between codes (ties)`, () => {
      // absmax 1 in every block: x · (1 / absmax) is x itself, so x lands where it is put.
      const xs: number[] = [];
      for (const m of books[type].midpoints) {
        const t = Math.fround(m);
        xs.push(1, t, nextFloat(t, -1), nextFloat(t, 1), -t, 1, Math.fround(m * 0.5) * 2);
      }
      expectSame(Float32Array.from(xs), type, 7);
      expectSame(Float32Array.from(xs), type, 16);
    });

    it(`${type}: any finite float32 values (property)`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 300 }),
          fc.constantFrom(16, 32, 64),
          (vals, blockSize) => expectSame(Float32Array.from(vals), type, blockSize),
        ),
        { numRuns: 200 },
      );
    });
  }
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqnrDb } from './metrics.js';
import { dequantizeNBits, nbitsSqnrDb, quantizeNBits, quantizeNBitsMatrix } from './nbits-quant.js';

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => u() + u() + u() + u() - 2);
}

describe('quantizeNBitsMatrix (panel-transposed fast path)', () => {
  // K = 70: a padded last block; N = 37: a partial panel.
  const K = 70;
  const N = 37;
  const w = randn(K * N, 11);
  w[3] = 9;
  const columnOf = (alpha: number) => (n: number, out: Float32Array) => {
    for (let k = 0; k < K; k++) out[k] = alpha * (w[k * N + n] as number);
  };
  const wt = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[n * K + k] = w[k * N + n] as number;

  for (const bits of [4, 8] as const) {
    for (const symmetric of [true, false]) {
      for (const rtn of [true, false]) {
        const o = { bits, blockSize: 32, symmetric, rtn };
        it(`${bits}-bit ${symmetric ? 'sym' : 'asym'}${rtn ? ' rtn' : ''}: [K,N], [N,K] and row-by-row give the same bytes`, () => {
          const ref = quantizeNBits(K, N, columnOf(1), o);
          for (const got of [quantizeNBitsMatrix(w, K, N, false, 1, o), quantizeNBitsMatrix(wt, K, N, true, 1, o)]) {
            expect(got.packed).toEqual(ref.packed);
            expect(got.scales).toEqual(ref.scales);
            expect(got.zeroPoints).toEqual(ref.zeroPoints);
          }
          const scaled = quantizeNBitsMatrix(wt, K, N, true, 0.5, o);
          expect(scaled.packed).toEqual(quantizeNBits(K, N, columnOf(0.5), o).packed);
        });
        it(`${bits}-bit ${symmetric ? 'sym' : 'asym'}${rtn ? ' rtn' : ''}: the kept SQNR equals the SQNR of the dequantized weight`, () => {
          const q = quantizeNBitsMatrix(w, K, N, false, 1, o);
          expect(nbitsSqnrDb(q)).toBeCloseTo(sqnrDb(w, dequantizeNBits(q, 32)), 4);
        });
      }
    }
  }

  it('asymmetric search: a block of zeros after a non-zero one adds no error to the kept SQNR', () => {
    // Strip by strip, block 1 of column 0 (random) is encoded just before block 1 of column 1 (zeros).
    const K2 = 64;
    const w2 = randn(K2 * 2, 5);
    for (let k = 32; k < K2; k++) w2[k * 2 + 1] = k % 2 ? -0 : 0;
    const q = quantizeNBitsMatrix(w2, K2, 2, false, 1, { bits: 4, blockSize: 32, symmetric: false });
    expect(nbitsSqnrDb(q)).toBeCloseTo(sqnrDb(w2, dequantizeNBits(q, 32)), 4);
  });

  it('search error ≤ RTN error on every block, for any block of values (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true }), {
          minLength: 32,
          maxLength: 32,
        }),
        (vals) => {
          const x = Float32Array.from(vals);
          const row = (_: number, out: Float32Array) => out.set(x);
          const err = (rtn: boolean) => {
            const back = dequantizeNBits(
              quantizeNBits(32, 1, row, { bits: 4, blockSize: 32, symmetric: true, rtn }),
              32,
            );
            let e = 0;
            for (let i = 0; i < 32; i++) e += ((x[i] as number) - (back[i] as number)) ** 2;
            return e;
          };
          expect(err(false)).toBeLessThanOrEqual(err(true) * (1 + 1e-6) + 1e-30);
        },
      ),
      { numRuns: 300 },
    );
  });
});

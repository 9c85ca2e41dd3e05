import { describe, expect, it } from 'vitest';
import { accumulateGram, gptqQuantize, outputError, symmetrize } from '../../quant/gptq.js';
import { normal } from '../../quant/testdata.test-util.js';
import { dequantizeBnb4, quantizeBnb4, type Bnb4Type } from '../../quant/bnb4-quant.js';
import { dequantizeNBits, quantizeNBitsMatrix, type NBitsOptions } from '../../quant/nbits-quant.js';
import { bnb4GroupQuantizer, bnb4WeightsFromGptq, nbitsGroupQuantizer, nbitsWeightsFromGptq } from './gptq-handler.js';

/** Inputs with correlated channels of unequal energy, as a transformer's normalized activations. */
function correlatedHessian(rows: number, K: number, seed: number): Float64Array {
  const z = normal(rows * K, seed);
  const mix = normal(K * 8, seed + 1);
  const x = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < K; k++) {
      let s = (z[r * K + k] as number) * (0.5 + (k % 5));
      for (let t = 0; t < 8; t++) s += (z[r * K + ((k * 7 + t * 13) % K)] as number) * (mix[k * 8 + t] as number);
      x[r * K + k] = s;
    }
  }
  const h = new Float64Array(K * K);
  accumulateGram(h, x, rows, K);
  symmetrize(h, K);
  return h;
}

/** [N, K] row-major → [K, N]. */
function fromNK(wt: Float32Array, K: number, N: number): Float32Array {
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[k * N + n] = wt[n * K + k] as number;
  return out;
}

const K = 128;
const N = 48;
const h = correlatedHessian(600, K, 3);
const w = normal(K * N, 4, 0.04);

describe('GPTQ for MatMulNBits / MatMulBnb4 (gptq-handler.ts)', () => {
  for (const symmetric of [true, false]) {
    it(`q4${symmetric ? '' : '-asym'} block 32: output error below both round-to-nearest and the data-free per-block search`, () => {
      const o: NBitsOptions = { bits: 4, blockSize: 32, symmetric };
      const r = gptqQuantize(w, K, N, h, nbitsGroupQuantizer(o));
      const g = nbitsWeightsFromGptq(r, w, o);
      // The stored weights (packed codes, scales, zero points) dequantize to GPTQ's own Ŵ.
      expect(dequantizeNBits(g, 32)).toEqual(r.dequantized);
      const eGptq = outputError(h, w, r.dequantized, K, N);
      const eSearch = outputError(h, w, dequantizeNBits(quantizeNBitsMatrix(w, K, N, false, 1, o), 32), K, N);
      const eRtn = outputError(
        h,
        w,
        dequantizeNBits(quantizeNBitsMatrix(w, K, N, false, 1, { ...o, rtn: true }), 32),
        K,
        N,
      );
      console.log(
        `q4${symmetric ? '' : '-asym'}: ‖XΔW‖² RTN ${eRtn.toFixed(2)}, search ${eSearch.toFixed(2)}, GPTQ ${eGptq.toFixed(2)}`,
      );
      expect(eGptq).toBeLessThan(0.85 * eSearch);
      expect(eSearch).toBeLessThan(eRtn);
    });
  }

  it('asymmetric zero points are packed two per byte, the first block in the low nibble', () => {
    const o: NBitsOptions = { bits: 4, blockSize: 32, symmetric: false };
    const r = gptqQuantize(w, K, N, h, nbitsGroupQuantizer(o));
    const g = nbitsWeightsFromGptq(r, w, o);
    const zp = g.zeroPoints as Uint8Array;
    expect(zp.length).toBe(N * 2); // 4 blocks → 2 bytes per column
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < 4; b++)
        expect(((zp[n * 2 + (b >> 1)] as number) >> (4 * (b & 1))) & 15).toBe(r.zeros[n * 4 + b]);
    }
  });

  it('K not a multiple of the block: the last block is padded with its zero point (dequantizes to 0)', () => {
    const k = 40;
    const o: NBitsOptions = { bits: 4, blockSize: 32, symmetric: true };
    const ww = w.subarray(0, k * N);
    const hh = correlatedHessian(100, k, 9);
    const r = gptqQuantize(ww, k, N, hh, nbitsGroupQuantizer(o));
    const g = nbitsWeightsFromGptq(r, ww, o);
    expect(dequantizeNBits(g, 32)).toEqual(r.dequantized);
    for (let n = 0; n < N; n++) for (let i = 8; i < 32; i++) expect(g.codes[(n * 2 + 1) * 32 + i]).toBe(8);
  });

  for (const type of ['nf4', 'fp4'] as Bnb4Type[]) {
    it(`${type} block 64: output error below the data-free constant search; MatMulBnb4 layout dequantizes to Ŵ`, () => {
      const r = gptqQuantize(w, K, N, h, bnb4GroupQuantizer(type, 64, false));
      const b = bnb4WeightsFromGptq(r);
      expect(fromNK(dequantizeBnb4(b, type, 64), K, N)).toEqual(r.dequantized);
      // High nibble first (bitsandbytes' order).
      expect((b.packed[0] as number) >> 4).toBe(b.codes[0]);
      expect((b.packed[0] as number) & 15).toBe(b.codes[1]);
      const wt = new Float32Array(N * K);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[n * K + k] = w[k * N + n] as number;
      const eGptq = outputError(h, w, r.dequantized, K, N);
      const eSearch = outputError(
        h,
        w,
        fromNK(dequantizeBnb4(quantizeBnb4(wt, { type, blockSize: 64 }), type, 64), K, N),
        K,
        N,
      );
      console.log(`${type}: ‖XΔW‖² search ${eSearch.toFixed(2)}, GPTQ ${eGptq.toFixed(2)}`);
      expect(eGptq).toBeLessThan(0.85 * eSearch);
    });
  }
});

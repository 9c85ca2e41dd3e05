import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  accumulateGram,
  gptqQuantize,
  gptqQuantizeReference,
  inverseCholeskyUpper,
  outputError,
  symmetrize,
  type GroupParams,
  type GroupQuantizer,
} from './gptq.js';
import { normal } from './testdata.test-util.js';

const f = Math.fround;

/** Symmetric 4-bit, scale = max|v| / 7, zero point 8 (MatMulNBits' default), round half to even. */
function int4AbsMax(blockSize: number): GroupQuantizer {
  return {
    blockSize,
    encodeBlockScale(values: Float32Array, out: GroupParams) {
      let m = 0;
      for (const v of values) m = Math.max(m, Math.abs(v));
      out.scale = m === 0 ? 1 : f(m / 7);
      out.zero = 8;
    },
    quantizeValue(v, s, z) {
      const r = v / s;
      let q = Math.round(r);
      if (Math.abs(r % 1) === 0.5) q = 2 * Math.round(r / 2);
      return Math.min(15, Math.max(0, q + z));
    },
    dequantize: (c, s, z) => f((c - z) * s),
  };
}

/** Integer grid with scale 1 and no clamping: the textbook setting of a hand-worked case. */
const unitGrid: GroupQuantizer = {
  blockSize: 16,
  encodeBlockScale: (_v, out) => {
    out.scale = 1;
    out.zero = 128;
  },
  quantizeValue: (v, _s, z) => Math.round(v) + z,
  dequantize: (c, _s, z) => c - z,
};

/** Round-to-nearest with the same quantizer: per-group parameters from the original values. */
function rtn(w: Float32Array, K: number, N: number, q: GroupQuantizer): Float32Array {
  const out = new Float32Array(K * N);
  const p: GroupParams = { scale: 1, zero: 0 };
  for (let n = 0; n < N; n++) {
    for (let k0 = 0; k0 < K; k0 += q.blockSize) {
      const len = Math.min(q.blockSize, K - k0);
      const col = new Float32Array(len);
      for (let t = 0; t < len; t++) col[t] = w[(k0 + t) * N + n] as number;
      q.encodeBlockScale(col, p);
      for (let t = 0; t < len; t++)
        out[(k0 + t) * N + n] = q.dequantize(q.quantizeValue(col[t] as number, p.scale, p.zero), p.scale, p.zero);
    }
  }
  return out;
}

/** Correlated inputs: X = Z·A with A a random mixing matrix plus a per-channel spread. */
function correlatedInputs(rows: number, K: number, seed: number): Float32Array {
  const z = normal(rows * K, seed);
  const a = normal(K * K, seed + 1, 0.3);
  const x = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < K; j++) {
      let s = (z[r * K + j] as number) * (1 + (j % 7));
      for (let i = 0; i < K; i += 3) s += (z[r * K + i] as number) * (a[i * K + j] as number);
      x[r * K + j] = s;
    }
  }
  return x;
}

function gram(x: Float32Array, rows: number, K: number): Float64Array {
  const h = new Float64Array(K * K);
  accumulateGram(h, x, rows, K);
  symmetrize(h, K);
  return h;
}

describe('GPTQ core (quant/gptq.ts)', () => {
  it("hand-worked 2×2: the first row's error moves onto the second by H₁₀/H₁₁", () => {
    // H = [[1, .5], [.5, 1]], w = [.4, .4] (K = 2, N = 1), grid = integers, no dampening.
    // Row 0 rounds to 0 (error .4); row 1 becomes .4 + (.5/1)·.4 = .6, which rounds to 1.
    // Output error dᵀHd: RTN d = [.4, .4] → .48; GPTQ d = [.4, −.6] → .16 + .36 − .24 = .28.
    const h = Float64Array.of(1, 0.5, 0.5, 1);
    const w = Float32Array.of(0.4, 0.4);
    const r = gptqQuantize(w, 2, 1, h, unitGrid, { damp: 0 });
    expect(Array.from(r.codes)).toEqual([128, 129]);
    expect(Array.from(r.dequantized)).toEqual([0, 1]);
    expect(outputError(h, w, r.dequantized, 2, 1)).toBeCloseTo(0.28, 6);
    expect(outputError(h, w, rtn(w, 2, 1, unitGrid), 2, 1)).toBeCloseTo(0.48, 6);
  });

  it('inverseCholeskyUpper: UᵀU is H⁻¹', () => {
    const K = 24;
    const h = gram(correlatedInputs(64, K, 5), 64, K);
    for (let k = 0; k < K; k++) h[k * K + k] = (h[k * K + k] as number) + 1;
    const u = inverseCholeskyUpper(h, K);
    for (let i = 0; i < K; i++) for (let j = 0; j < i; j++) expect(u[i * K + j]).toBe(0);
    // (UᵀU)·H = I
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) {
        let s = 0;
        for (let p = 0; p < K; p++) {
          let inv = 0;
          for (let t = 0; t < K; t++) inv += (u[t * K + i] as number) * (u[t * K + p] as number);
          s += inv * (h[p * K + j] as number);
        }
        expect(s).toBeCloseTo(i === j ? 1 : 0, 8);
      }
    }
  });

  it('accumulateGram + symmetrize is XᵀX', () => {
    const x = normal(7 * 5, 11);
    const h = gram(x, 7, 5);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++) {
        let s = 0;
        for (let r = 0; r < 7; r++) s += (x[r * 5 + i] as number) * (x[r * 5 + j] as number);
        expect(h[i * 5 + j]).toBeCloseTo(s, 10);
      }
    }
  });

  it('with a diagonal H (H = I and any positive diagonal) GPTQ is exactly round-to-nearest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 9 }),
        fc.constantFrom(16, 32),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 1e6 }),
        (K, N, bs, identity, actOrder, seed) => {
          const w = normal(K * N, seed);
          const diag = normal(K, seed + 1);
          const h = new Float64Array(K * K);
          for (let k = 0; k < K; k++) h[k * K + k] = identity ? 1 : 0.1 + Math.abs(diag[k] as number);
          const q = int4AbsMax(bs);
          const r = gptqQuantize(w, K, N, h, q, { actOrder });
          expect(Array.from(r.dequantized)).toEqual(Array.from(rtn(w, K, N, q)));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('lazy batches equal the row-by-row reference bit for bit (any batch, block, act-order)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 12 }),
        fc.constantFrom(16, 32),
        fc.constantFrom(1, 16, 20, 48, 128),
        fc.boolean(),
        fc.integer({ min: 0, max: 1e6 }),
        (K, N, bs, batch, actOrder, seed) => {
          const w = normal(K * N, seed);
          const h = gram(correlatedInputs(2 * K + 3, K, seed + 2), 2 * K + 3, K);
          if (K > 2) h.fill(0, 0, K); // a dead input row/column exercises the H[k,k] = 0 path
          if (K > 2) for (let k = 0; k < K; k++) h[k * K] = 0;
          const q = int4AbsMax(bs);
          const fast = gptqQuantize(w, K, N, h, q, { actOrder, batch });
          const ref = gptqQuantizeReference(w, K, N, h, q, { actOrder });
          expect(fast.codes).toEqual(ref.codes);
          expect(fast.scales).toEqual(ref.scales);
          expect(fast.dequantized).toEqual(ref.dequantized);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("on correlated inputs the output error ‖X(W − Ŵ)‖² is well below round-to-nearest's", () => {
    const K = 128,
      N = 32,
      rows = 512;
    const x = correlatedInputs(rows, K, 21);
    const h = gram(x, rows, K);
    const w = normal(K * N, 22, 0.05);
    const q = int4AbsMax(32);
    const base = outputError(h, w, rtn(w, K, N, q), K, N);
    const plain = outputError(h, w, gptqQuantize(w, K, N, h, q).dequantized, K, N);
    const act = outputError(h, w, gptqQuantize(w, K, N, h, q, { actOrder: true }).dequantized, K, N);
    console.log(
      `output error: RTN ${base.toExponential(3)}, GPTQ ${plain.toExponential(3)} (${(plain / base).toFixed(3)}×), act-order ${act.toExponential(3)} (${(act / base).toFixed(3)}×)`,
    );
    expect(plain).toBeLessThan(0.8 * base);
    expect(act).toBeLessThan(0.8 * base);
  });
});

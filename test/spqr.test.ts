import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { quantizeModelBytesAwq } from '../src/flows/awq-node.js';
import { quantizeModelBytesGptq } from '../src/flows/gptq.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { decodeFloat16 } from '../src/formats/float16.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { awqSearchScale, gramOutputError, type FakeQuant } from '../src/quant/awq.js';
import { dequantizeBnb4, quantizeBnb4 } from '../src/quant/bnb4-quant.js';
import { gptqQuantize, outputError } from '../src/quant/gptq.js';
import { dequantizeHqq } from '../src/quant/hqq.js';
import { spqrBits, spqrQuantize } from '../src/quant/spqr.js';
import { quantizeSuperBlocks, superBlockGroupQuantizer } from '../src/quant/superblock.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';

/*
 * q3-spqr (SpQR: 3-bit codes, 3-bit scales under second-level steps, individual fp16 outliers) as
 * ONNX Runtime runs it, its true-byte accounting; q4-k with GPTQ; AWQ's scale search against its
 * own α = 0 candidate.
 */

/** Y [B, T, N] = A [B, T, K] · W: a rank-3 input, as the LMs feed their MatMuls. */
function matmulModel(K: number, N: number, w: Float32Array): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm' }],
      inputs: [{ name: 'A', dtype: 'float32', dims: ['B', 'T', K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: ['B', 'T', N] }],
      initializers: { W: makeTensor('float32', [K, N], w) },
      opsets: { '': 17 },
    }),
  );
}

async function run(bytes: Uint8Array, a: Float32Array, B: number, T: number, K: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ A: new ort.Tensor('float32', a, [B, T, K]) });
  await s.release();
  return out[s.outputNames[0] as string]!.data as Float32Array;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
    m = Math.max(m, Math.abs(b[i] as number));
  }
  return d / m;
}
const sqErr = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - (b[i] as number)) ** 2, 0);

/** Correlated rows (a few strong directions plus noise), where GPTQ's compensation has something to use. */
function correlated(rows: number, K: number, seed: number): Float32Array {
  const basis = randn(4 * K, seed);
  const mix = randn(rows * 4, seed + 1);
  const noise = randn(rows * K, seed + 2, 0.05);
  const x = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) {
      let v = noise[r * K + k] as number;
      for (let j = 0; j < 4; j++) v += (mix[r * 4 + j] as number) * (basis[j * K + k] as number);
      x[r * K + k] = v;
    }
  return x;
}

function gram(x: Float32Array, rows: number, K: number): Float64Array {
  const h = new Float64Array(K * K);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < K; i++) {
      const xi = x[r * K + i] as number;
      for (let j = 0; j < K; j++) h[i * K + j] = (h[i * K + j] as number) + xi * (x[r * K + j] as number);
    }
  return h;
}

describe('q3-spqr: SpQR as stock ONNX Runtime runs it', () => {
  const K = 96;
  const N = 20; // two second-level groups of outputs, the second one partial
  const w = randn(K * N, 31);
  w[17 * N + 3] = 9; // one large single weight: an outlier
  const B = 2;
  const T = 3;
  const a = randn(B * T * K, 32);

  it('DequantizeLinear scales → MatMulNBits, outliers as Gather · (ScatterND-built dense correction); ORT = A · Ŵ (1e-5); the planted weight is an outlier', async () => {
    const q = quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q3-spqr', outliers: 0.02 });
    const g = modelFromProto(decodeModel(q.bytes)).graph;
    expect(g.nodes.map((n) => n.opType).sort()).toEqual(
      ['Add', 'Cast', 'Cast', 'DequantizeLinear', 'Expand', 'Gather', 'MatMul', 'MatMulNBits', 'ScatterND'].sort(),
    );
    const ref = spqrQuantize(w, K, N, undefined, { blockSize: 16, outliers: 0.02 });
    const nnz = ref.outlierN.length;
    expect(nnz).toBeGreaterThan(0);
    expect(nnz).toBeLessThanOrEqual(Math.round(0.02 * K * N));
    const planted = [...ref.outlierK].findIndex((k, i) => k === 17 && ref.outlierN[i] === 3);
    expect(planted).toBeGreaterThanOrEqual(0);
    // Ŵ from the file's own tensors: (code − zero) · x · step + correction.
    const init = (suffix: string) => g.initializers.get(`W_${suffix}`)!.load().data;
    const packed = init('Q3') as Uint8Array;
    const x = init('scale_codes') as Int8Array;
    const steps = init('scale_steps') as Float32Array;
    const zp = init('zero_points') as Uint8Array;
    const kBlocks = K / 16;
    const fromFile = new Float32Array(K * N);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const b = Math.floor(k / 16);
        const p = n * kBlocks + b;
        const code = ((packed[p * 8 + ((k % 16) >> 1)] as number) >> ((k & 1) * 4)) & 15;
        const zero = ((zp[n * (kBlocks / 2) + (b >> 1)] as number) >> ((b & 1) * 4)) & 15;
        expect(code).toBeLessThan(8); // 3-bit levels in 4-bit storage
        const scale = Math.fround((x[p] as number) * (steps[Math.floor(n / 16) * kBlocks + b] as number));
        fromFile[k * N + n] = Math.fround((code - zero) * scale);
      }
    const ks = init('outlier_inputs') as Int32Array;
    const at = init('outlier_positions') as Int32Array;
    const vs = init('outlier_fp16') as Uint16Array;
    expect(vs.length).toBe(nnz);
    for (let i = 0; i < nnz; i++) {
      const j = (ks[at[2 * i] as number] as number) * N + (at[2 * i + 1] as number);
      fromFile[j] = Math.fround((fromFile[j] as number) + decodeFloat16(vs[i] as number));
    }
    expect(maxRelDiff(fromFile, ref.dequantized)).toBe(0);
    // The planted weight is kept to fp16 precision.
    expect(Math.abs((ref.dequantized[17 * N + 3] as number) - 9)).toBeLessThan(9 * 2 ** -10);
    const got = await run(q.bytes, a, B, T, K);
    const expected = await run(matmulModel(K, N, ref.dequantized), a, B, T, K);
    expect(maxRelDiff(got, expected)).toBeLessThan(1e-5);
    // Outliers help: the same quantizer without them errs more.
    const truth = await run(matmulModel(K, N, w), a, B, T, K);
    const none = spqrQuantize(w, K, N, undefined, { blockSize: 16, outliers: 0 });
    expect(sqErr(got, truth)).toBeLessThan(sqErr(await run(matmulModel(K, N, none.dequantized), a, B, T, K), truth));
  });

  it('true bytes, hand-counted: codes 3·K·N, 3-bit scales and zeros per group, 24 bits per second-level group, 32 per outlier + 16-bit row pointers', () => {
    const q = quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q3-spqr', outliers: 0.02 });
    const nnz = spqrQuantize(w, K, N, undefined, { blockSize: 16, outliers: 0.02 }).outlierN.length;
    const bits = 3 * K * N + 3 * N * 6 + 3 * N * 6 + 24 * 2 * 6 + 32 * nnz + 16 * (N + 1);
    expect(q.report.layers[0]!.trueBytes).toBe(Math.ceil(bits / 8));
    // The file: 4-bit codes, int8 scale codes, fp32 steps, packed zero points; per outlier two int32
    // positions and an fp16 value, an int32 per input holding one, a zero and the dense shape.
    const inputs = new Set(spqrQuantize(w, K, N, undefined, { blockSize: 16, outliers: 0.02 }).outlierK).size;
    expect(q.report.layers[0]!.bytesAfter).toBe((K * N) / 2 + N * 6 + 4 * 2 * 6 + N * 3 + 10 * nnz + 4 * inputs + 20);
    // A 4096 × 4096 layer at block 32, 0.5 %: 3 + 6/32 + 24/512 + 0.16 + 16·4097/4096² ≈ 3.40 bits per weight.
    const big = spqrBits(4096, 4096, Math.round(0.005 * 4096 * 4096), { blockSize: 32, outliers: 0.005 });
    expect(big.total / 4096 ** 2).toBeCloseTo(3 + 6 / 32 + 24 / 512 + 0.16 + (16 * 4097) / 4096 ** 2, 6);
  });

  it('with calibration data (GPTQ order): the output error on the calibration rows is below the data-free form', async () => {
    const Kc = 64;
    const Nc = 16;
    const rows = 128;
    const wc = randn(Kc * Nc, 33);
    const xc = correlated(rows, Kc, 34);
    const bytes = matmulModel(Kc, Nc, wc);
    const calib = new Map([['A', makeTensor('float32', [1, rows, Kc], xc)]]);
    const gq = await quantizeModelBytesGptq(bytes, { scheme: 'q3-spqr' }, calib);
    expect(gq.report.layers[0]!.form).toMatch(/ gptq$/);
    const truth = await run(bytes, xc, 1, rows, Kc);
    const free = sqErr(await run(quantizeModelBytes(bytes, { scheme: 'q3-spqr' }).bytes, xc, 1, rows, Kc), truth);
    expect(sqErr(await run(gq.bytes, xc, 1, rows, Kc), truth)).toBeLessThan(free);
  });

  it('refuses `hqq`, `rtn`, `format` qdq and `awq`', async () => {
    const bytes = matmulModel(K, N, w);
    const calib = new Map([['A', makeTensor('float32', [1, 8, K], randn(8 * K, 35))]]);
    await expect(quantizeModelBytesAwq(bytes, { scheme: 'q3-spqr' }, calib)).rejects.toThrow(/does not model SpQR/);
    expect(() => quantizeModelBytes(bytes, { scheme: 'q3-spqr', hqq: true })).toThrow(/SpQR chooses/);
    expect(() => quantizeModelBytes(bytes, { scheme: 'q3-spqr', rtn: true })).toThrow(/SpQR chooses/);
    expect(() => quantizeModelBytes(bytes, { scheme: 'q3-spqr', format: 'qdq' })).toThrow(/SpQR chooses/);
  });
});

describe('q4-k with GPTQ: the super-block quantizer inside GPTQ', () => {
  const K = 512; // two super-blocks of 256
  const N = 24;
  const rows = 384;
  const w = randn(K * N, 41, 0.1);
  const x = correlated(rows, K, 42);
  const h = gram(x, rows, K);

  it("lowers the layer's output error ‖X(W − Ŵ)‖² below the data-free k-quant's", () => {
    const so = { bits: 4 as const, blockSize: 32, superBlock: 256 };
    const r = gptqQuantize(w, K, N, h, superBlockGroupQuantizer(so, K, N));
    const rtn = dequantizeHqq(
      quantizeSuperBlocks(
        K,
        N,
        (n, out) => {
          for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
        },
        so,
      ),
      32,
    );
    const eG = outputError(h, w, r.dequantized, K, N);
    const eR = outputError(h, w, rtn, K, N);
    expect(eG).toBeLessThan(0.8 * eR);
  });
});

describe('q4-k with GPTQ through the calibration path', () => {
  it('runs in ORT as MatMulNBits with float zero points; output error on the calibration rows below the data-free q4-k', async () => {
    const K = 96;
    const N = 16;
    const rows = 128;
    const bytes = matmulModel(K, N, randn(K * N, 61, 0.1));
    const x = correlated(rows, K, 62);
    const g = await quantizeModelBytesGptq(
      bytes,
      { scheme: 'q4-k' },
      new Map([['A', makeTensor('float32', [1, rows, K], x)]]),
    );
    expect(g.report.layers[0]!.form).toMatch(/k-quant gptq$/);
    expect(g.report.layers[0]!.trueBytes).toBe((K * N) / 2 + (N * 3 * 12) / 8 + N * 4);
    const truth = await run(bytes, x, 1, rows, K);
    const free = sqErr(await run(quantizeModelBytes(bytes, { scheme: 'q4-k' }).bytes, x, 1, rows, K), truth);
    expect(sqErr(await run(g.bytes, x, 1, rows, K), truth)).toBeLessThan(free);
  });
});

describe('AWQ scale search: never worse than no scaling on its own objective', () => {
  const K = 64;
  const N = 32;
  const rows = 256;
  const x = correlated(rows, K, 51);
  for (let r = 0; r < rows; r++) x[r * K + 5] = 20 * (x[r * K + 5] as number); // a salient channel
  const h = gram(x, rows, K);
  const meanAbs = new Float64Array(K);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) meanAbs[k] = (meanAbs[k] as number) + Math.abs(x[r * K + k] as number) / rows;
  const nf4: FakeQuant = (wk, Kk, Nk) => {
    const wt = new Float32Array(Kk * Nk);
    for (let k = 0; k < Kk; k++) for (let n = 0; n < Nk; n++) wt[n * Kk + k] = wk[k * Nk + n] as number;
    const back = dequantizeBnb4(quantizeBnb4(wt, { type: 'nf4', blockSize: 64, rtn: true }), 'nf4', 64);
    const out = new Float32Array(Kk * Nk);
    for (let k = 0; k < Kk; k++) for (let n = 0; n < Nk; n++) out[k * Nk + n] = back[n * Kk + k] as number;
    return out;
  };
  for (const seed of [52, 53, 54]) {
    it(`nf4, seed ${seed}: the chosen α's group error ≤ α = 0's, and α = 0 is exactly the plain quantizer`, () => {
      const w = randn(K * N, seed, 0.1);
      const r = awqSearchScale(h, meanAbs, [{ w, N }], nf4);
      expect(r.error).toBeLessThanOrEqual(r.errorPlain);
      expect(r.errorPlain).toBeCloseTo(gramOutputError(h, w, nf4(w, K, N), K, N), 6);
    });
  }
});

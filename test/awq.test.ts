import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { applyAwq } from '../src/flows/awq.js';
import { quantizeModelBytesAwq } from '../src/flows/awq-node.js';
import { lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { nodeRuntime } from '../src/node/ort-runtime.js';
import { awqClip, awqScales, awqSearchScale, gramOutputError } from '../src/quant/awq.js';
import { accumulateGram, symmetrize } from '../src/quant/gptq.js';
import { dequantizeNBits, quantizeNBitsMatrix } from '../src/quant/nbits-quant.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';
import { lnQkReluNodes } from './helpers/awq-block-model.js';

/*
 * AWQ: the math against direct computations on small matrices, the graph rewrite against ONNX
 * Runtime (the scaled fp32 model computes what the original does; the quantized one is closer to
 * it than without AWQ), and one LM check.
 */

/** X [rows, K] with channel magnitudes spread over 1 … 20 (a few salient channels). */
function activations(rows: number, K: number, seed: number): Float32Array {
  const x = randn(rows * K, seed);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) x[r * K + k] = (x[r * K + k] as number) * (k % 7 === 0 ? 20 : 1 + (k % 3));
  return x;
}

function gram(x: Float32Array, rows: number, K: number): Float64Array {
  const h = new Float64Array(K * K);
  accumulateGram(h, x, rows, K);
  symmetrize(h, K);
  return h;
}

const q4 = (w: Float32Array, K: number, N: number) =>
  dequantizeNBits(quantizeNBitsMatrix(w, K, N, false, 1, { bits: 4, blockSize: 16, symmetric: true, rtn: true }), 16);

describe('AWQ math (quant/awq.ts)', () => {
  const K = 32;
  const N = 8;
  const rows = 64;
  const x = activations(rows, K, 1);
  const w = randn(K * N, 2);
  const h = gram(x, rows, K);

  it('Gram output error = ‖X·(W − Ŵ)‖² computed directly', () => {
    const wq = q4(w, K, N);
    let direct = 0;
    for (let r = 0; r < rows; r++)
      for (let n = 0; n < N; n++) {
        let y = 0;
        for (let k = 0; k < K; k++)
          y += (x[r * K + k] as number) * ((w[k * N + n] as number) - (wq[k * N + n] as number));
        direct += y * y;
      }
    expect(gramOutputError(h, w, wq, K, N)).toBeCloseTo(direct, 6);
  });

  it('scales: α = 0 is all ones; otherwise max · min = 1 after normalisation, order kept', () => {
    const m = Float64Array.from({ length: K }, (_, k) => 0.5 + k);
    expect([...awqScales(m, 0)].every((v) => v === 1)).toBe(true);
    const s = awqScales(m, 0.5);
    expect(Math.max(...s) * Math.min(...s)).toBeCloseTo(1, 5);
    for (let k = 1; k < K; k++) expect(s[k]).toBeGreaterThan(s[k - 1] as number);
  });

  it('the grid search picks the α of least group output error, never worse than α = 0', () => {
    const meanAbs = new Float64Array(K);
    for (let r = 0; r < rows; r++)
      for (let k = 0; k < K; k++) meanAbs[k] = (meanAbs[k] as number) + Math.abs(x[r * K + k] as number) / rows;
    const r = awqSearchScale(h, meanAbs, [{ w, N }], q4, 20);
    expect(r.error).toBeLessThanOrEqual(r.errorPlain);
    // Re-scoring the chosen s from scratch gives the reported error.
    const ws = w.map((v, i) => v * (r.s[Math.floor(i / N)] as number));
    const back = q4(ws, K, N).map((v, i) => v / (r.s[Math.floor(i / N)] as number));
    expect(gramOutputError(h, w, back, K, N)).toBeCloseTo(r.error, 6);
    // Salient channels (k % 7 = 0) get the largest scales.
    expect(r.alpha).toBeGreaterThan(0);
    expect(r.s[0]).toBeGreaterThan(r.s[1] as number);
  });

  it('clipping: no block gets worse, clipped weights stay within the original maximum', () => {
    const c = awqClip(h, w, K, N, 16, (v) => q4(v, v.length, 1));
    expect(c.errorAfter).toBeLessThanOrEqual(c.errorBefore);
    for (let i = 0; i < w.length; i++)
      expect(Math.abs(c.clipped[i] as number)).toBeLessThanOrEqual(Math.abs(w[i] as number) + 0);
  });
});

/** LayerNorm → (q, k) → Add → Relu → fc: two AWQ groups, one folded into the norm, one by a Mul. */
function tinyModel(K: number): Uint8Array {
  const H = 2 * K;
  const gamma = Float32Array.from({ length: K }, (_, k) => 1 + (k % 4) * 0.5);
  return encodeModel(
    makeModel({
      nodes: lnQkReluNodes('Y', 'fc'),
      inputs: [{ name: 'X', dtype: 'float32', dims: ['M', K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: ['M', 8] }],
      initializers: {
        gamma: makeTensor('float32', [K], gamma),
        beta: makeTensor('float32', [K], randn(K, 3, 0.1)),
        Wq: makeTensor('float32', [K, H], randn(K * H, 4)),
        Wk: makeTensor('float32', [K, H], randn(K * H, 5)),
        Wo: makeTensor('float32', [H, 8], randn(H * 8, 6)),
      },
      opsets: { '': 17 },
    }),
  );
}

async function run(bytes: Uint8Array, x: Float32Array, rows: number, K: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  return (await s.run({ X: new ort.Tensor('float32', x, [rows, K]) })).Y!.data as Float32Array;
}
const sqErr = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - (b[i] as number)) ** 2, 0);

describe('AWQ on a graph (flows/awq.ts) in ONNX Runtime', () => {
  const K = 64;
  const rows = 128;
  const x = activations(rows, K, 7);
  const bytes = tinyModel(K);
  const calib = new Map([['X', makeTensor('float32', [rows, K], x)]]);

  it('scales folded into the norm and a Mul: the fp32 model computes what it did (1e-5)', async () => {
    const model = modelFromProto(decodeModel(bytes));
    const r = await applyAwq(nodeRuntime, model, { scheme: 'q4', blockSize: 16 }, calib, { maxShrink: 0 });
    expect(r.groups.map((g) => g.foldedInto)).toEqual([
      expect.stringMatching(/^LayerNormalization 'ln'$|^$/),
      expect.stringMatching(/^Mul '|^$/),
    ]);
    expect(r.groups.some((g) => g.alpha > 0)).toBe(true);
    const ref = await run(bytes, x, rows, K);
    const got = await run(encodeModel(modelToProto(model)), x, rows, K);
    const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < ref.length; i++)
      expect(Math.abs((got[i] as number) - (ref[i] as number))).toBeLessThan(1e-5 * scale);
  });

  for (const scheme of ['q4', 'q3-asym', 'nf4'] as const) {
    it(`${scheme}: the AWQ model's output is closer to fp32 than the plain quantized one`, async () => {
      const ref = await run(bytes, x, rows, K);
      const plain = sqErr(await run(quantizeModelBytes(bytes, { scheme, blockSize: 16 }).bytes, x, rows, K), ref);
      const a = await quantizeModelBytesAwq(bytes, { scheme, blockSize: 16 }, calib);
      expect(a.report.notes.join(' ')).toMatch(/AWQ: \d+ of 2 input group/);
      expect(sqErr(await run(a.bytes, x, rows, K), ref)).toBeLessThan(plain);
    });
  }
});

describe('AWQ on models/lm.onnx', () => {
  it('q4 block 128: perplexity below the plain q4 model; v → o folded into v', async () => {
    const path = (p: string) => new URL(p, import.meta.url).pathname;
    const bytes = readFileSync(path('../models/lm.onnx'));
    const windows = readNpy(readFileSync(path('../models/lm-eval.npy')));
    const calib = new Map([['input_ids', readNpy(readFileSync(path('../models/lm-calib.npy')))]]);
    const base = (await lmPerplexity(bytes, windows)).perplexity;
    const plain = (await lmPerplexity(quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128 }).bytes, windows))
      .perplexity;
    const a = await quantizeModelBytesAwq(bytes, { scheme: 'q4', blockSize: 128 }, calib, { grid: 10 });
    const p = (await lmPerplexity(a.bytes, windows)).perplexity;
    console.log(
      `lm.onnx q4 g128: plain ${((plain / base - 1) * 100).toFixed(2)} %, AWQ ${((p / base - 1) * 100).toFixed(2)} %`,
    );
    expect(p).toBeLessThan(plain);
    expect(a.awq.groups.some((g) => /attn\/v\/MatMul' output columns/.test(g.foldedInto))).toBe(true);
  });
});

describe('quantkit quantize --awq', () => {
  it('without --calib is a user error naming --calib', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const model = new URL('../models/lm.onnx', import.meta.url).pathname;
    const r = runCli(['quantize', model, '-o', '/tmp/never-written-awq.onnx', '--scheme', 'q4', '--awq']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('QK_CALIB_MISSING');
    expect(r.stderr).toContain('--calib');
  });
});

import { describe, expect, it } from 'vitest';
import { BlockScorer, captureBlockFeeds, findAwqBlock } from '../src/flows/awq-block.js';
import { applyAwq } from '../src/flows/awq.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { nodeRuntime } from '../src/node/ort-runtime.js';
import { awqSearchScaleBy, scaledFakeQuant } from '../src/quant/awq.js';
import { dequantizeNBits, quantizeNBitsMatrix } from '../src/quant/nbits-quant.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';
import { lnQkReluNodes } from './helpers/awq-block-model.js';

/*
 * AWQ's block objective (flows/awq-block.ts): on a residual block
 *   Y = X + Relu(LN(X)·Wq + LN(X)·Wk)·Wo
 * the (q, k) group is scored on Relu(…)·Wo, the block output, which this file computes by hand.
 */

const K = 32;
const H = 48;
const ROWS = 96;

const x = randn(ROWS * K, 11).map((v, i) => v * ((i % K) % 5 === 0 ? 8 : 1 + ((i % K) % 3)));
const gamma = Float32Array.from({ length: K }, (_, k) => (k % 5 === 0 ? 6 : 1 + (k % 3) * 0.5));
const beta = randn(K, 12, 0.1);
const wq = randn(K * H, 13);
const wk = randn(K * H, 14);
const wo = randn(H * K, 15, 0.3);

function blockModel(): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [...lnQkReluNodes('o', 'o'), { opType: 'Add', inputs: ['X', 'o'], outputs: ['Y'], name: 'residual' }],
      inputs: [{ name: 'X', dtype: 'float32', dims: ['M', K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: ['M', K] }],
      initializers: {
        gamma: makeTensor('float32', [K], gamma),
        beta: makeTensor('float32', [K], beta),
        Wq: makeTensor('float32', [K, H], wq),
        Wk: makeTensor('float32', [K, H], wk),
        Wo: makeTensor('float32', [H, K], wo),
      },
      opsets: { '': 17 },
    }),
  );
}

/** LN(X) as ONNX defines it (ε = 1e-5, population variance). */
function layerNorm(): Float64Array {
  const n = new Float64Array(ROWS * K);
  for (let r = 0; r < ROWS; r++) {
    let mean = 0;
    for (let k = 0; k < K; k++) mean += x[r * K + k] as number;
    mean /= K;
    let v = 0;
    for (let k = 0; k < K; k++) v += ((x[r * K + k] as number) - mean) ** 2;
    const inv = 1 / Math.sqrt(v / K + 1e-5);
    for (let k = 0; k < K; k++)
      n[r * K + k] = ((x[r * K + k] as number) - mean) * inv * (gamma[k] as number) + (beta[k] as number);
  }
  return n;
}

/** Relu(n·Wq + n·Wk)·Wo, row by row. */
function blockOut(n: Float64Array, q: Float32Array, k: Float32Array): Float64Array {
  const y = new Float64Array(ROWS * K);
  const r = new Float64Array(H);
  for (let row = 0; row < ROWS; row++) {
    for (let h = 0; h < H; h++) {
      let s = 0;
      for (let c = 0; c < K; c++)
        s += (n[row * K + c] as number) * ((q[c * H + h] as number) + (k[c * H + h] as number));
      r[h] = Math.max(0, s);
    }
    for (let c = 0; c < K; c++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += (r[h] as number) * (wo[h * K + c] as number);
      y[row * K + c] = s;
    }
  }
  return y;
}

function handError(n: Float64Array, q: Float32Array, k: Float32Array): number {
  const ref = blockOut(n, wq, wk);
  const got = blockOut(n, q, k);
  return ref.reduce((s, v, i) => s + (v - (got[i] as number)) ** 2, 0);
}

const q4 = (w: Float32Array, rows: number, cols: number) =>
  dequantizeNBits(
    quantizeNBitsMatrix(w, rows, cols, false, 1, { bits: 4, blockSize: 16, symmetric: true, rtn: true }),
    16,
  );

describe('AWQ block objective (flows/awq-block.ts)', () => {
  const model = modelFromProto(decodeModel(blockModel()));
  const calib = new Map([['X', makeTensor('float32', [ROWS, K], x)]]);
  const n = layerNorm();
  const layers = model.graph.nodes.filter((nd) => nd.name === 'q' || nd.name === 'k');
  const block = findAwqBlock(model, 'n', layers);

  it('finds the block: q, k, add, relu, o up to the residual Add; o alone has no block beyond itself', () => {
    expect(block?.output).toBe('o');
    expect(block?.nodes.map((nd) => nd.name)).toEqual(['q', 'k', 'add', 'relu', 'o']);
    expect(block?.external).toEqual([]);
    expect(
      findAwqBlock(
        model,
        'r',
        model.graph.nodes.filter((nd) => nd.name === 'o'),
      ),
    ).toBeUndefined();
  });

  it('scores quantized weights by the block output error computed by hand', async () => {
    if (!block) throw new Error('no block');
    const feeds = await captureBlockFeeds(nodeRuntime, model, [block], calib, 32);
    expect(feeds.get(block)?.length).toBe(3);
    const scorer = await BlockScorer.open(nodeRuntime, model, block, feeds.get(block) ?? [], [wq, wk]);
    try {
      const qq = q4(wq, K, H);
      const qk = q4(wk, K, H);
      const hand = handError(n, qq, qk);
      expect(hand).toBeGreaterThan(0);
      expect(await scorer.score([qq, qk])).toBeCloseTo(hand, -Math.floor(Math.log10(hand)) + 3);
      // The original weights score 0.
      expect(await scorer.score([wq, wk])).toBe(0);
      // The search: never worse than α = 0 on this objective, and its error is the hand-computed one.
      const meanAbs = new Float64Array(K);
      for (let i = 0; i < n.length; i++) meanAbs[i % K] = (meanAbs[i % K] as number) + Math.abs(n[i] as number) / ROWS;
      const weights = [
        { w: wq, N: H },
        { w: wk, N: H },
      ];
      const r = await awqSearchScaleBy(meanAbs, weights, q4, (ws) => scorer.score(ws), 10);
      expect(r.error).toBeLessThanOrEqual(r.errorPlain);
      expect(r.errorPlain).toBeCloseTo(hand, -Math.floor(Math.log10(hand)) + 3);
      const chosen = handError(n, scaledFakeQuant(wq, K, H, r.s, q4), scaledFakeQuant(wk, K, H, r.s, q4));
      expect(r.error).toBeCloseTo(chosen, -Math.floor(Math.log10(chosen)) + 3);
    } finally {
      await scorer.close();
    }
  });

  it('applyAwq with `objective` block scores (q, k) on the block and o on itself, never above α = 0; linear by default', async () => {
    const m = modelFromProto(decodeModel(blockModel()));
    const r = await applyAwq(nodeRuntime, m, { scheme: 'q4', blockSize: 16 }, calib, {
      maxShrink: 0,
      grid: 10,
      objective: 'block',
    });
    expect(r.groups.map((g) => [g.activation, g.objective])).toEqual([
      ['n', 'block'],
      ['r', 'linear'],
    ]);
    for (const g of r.groups) expect(g.error).toBeLessThanOrEqual(g.errorPlain);
    const lin = await applyAwq(
      nodeRuntime,
      modelFromProto(decodeModel(blockModel())),
      { scheme: 'q4', blockSize: 16 },
      calib,
      {
        maxShrink: 0,
        grid: 10,
      },
    );
    expect(lin.groups.map((g) => g.objective)).toEqual(['linear', 'linear']);
  });
});

describe('quantkit quantize --awq-objective', () => {
  it('an unknown objective is a user error naming the choices', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const model = new URL('../models/lm.onnx', import.meta.url).pathname;
    const r = runCli([
      'quantize',
      model,
      '-o',
      '/tmp/never-written-awq-objective.onnx',
      '--scheme',
      'q4',
      '--awq',
      '--awq-objective',
      'loss',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--awq-objective 'loss' is not known");
    expect(r.stderr).toContain('linear or block');
  });
});

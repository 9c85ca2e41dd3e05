import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { makeAttribute } from '../io/onnx/attribute.js';
import { makeModel } from '../io/onnx/build.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { makeTensor } from '../tensor/tensor.js';
import { foldBatchNorm } from './fold-batchnorm.js';

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from(
    { length: n },
    () => lo + (hi - lo) * ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32),
  );
}

async function run(bytes: Uint8Array, name: string, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const out = await s.run({ [name]: new ort.Tensor('float32', x, dims) });
  return out[s.outputNames[0] as string]!.data as Float32Array;
}

/** Largest |a − b| relative to the largest |b| (elementwise ratios blow up at outputs near 0). */
function maxRel(a: Float32Array, b: Float32Array): number {
  let m = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return m / scale;
}

function bnParams(C: number, seed: number) {
  return {
    gamma: makeTensor('float32', [C], rand(C, seed, 0.5, 2)),
    beta: makeTensor('float32', [C], rand(C, seed + 1)),
    mean: makeTensor('float32', [C], rand(C, seed + 2)),
    var: makeTensor('float32', [C], rand(C, seed + 3, 0.1, 3)),
  };
}

describe('foldBatchNorm', () => {
  it('Conv (with and without bias) + BatchNormalization: folded, ORT output within 1e-5 relative', async () => {
    for (const withBias of [true, false]) {
      const C = 6;
      const bn = bnParams(C, 10);
      const proto = makeModel({
        nodes: [
          {
            opType: 'Conv',
            inputs: withBias ? ['X', 'W', 'B'] : ['X', 'W'],
            outputs: ['c'],
            attributes: { pads: [1, 1, 1, 1] },
          },
          {
            opType: 'BatchNormalization',
            inputs: ['c', 'gamma', 'beta', 'mean', 'var'],
            outputs: ['Y'],
            attributes: { epsilon: makeAttribute('epsilon', 1e-3, 'float') },
          },
        ],
        inputs: [{ name: 'X', dtype: 'float32', dims: [2, 3, 5, 5] }],
        outputs: [{ name: 'Y', dtype: 'float32', dims: [2, C, 5, 5] }],
        initializers: {
          W: makeTensor('float32', [C, 3, 3, 3], rand(C * 27, 1)),
          B: makeTensor('float32', [C], rand(C, 2)),
          ...bn,
        },
        opsets: { '': 17 },
      });
      const model = modelFromProto(proto);
      expect(foldBatchNorm(model)).toBe(1);
      expect(model.graph.nodes.map((n) => n.opType)).toEqual(['Conv']);
      expect([...model.graph.initializers.keys()].some((k) => k === 'mean' || k === 'W')).toBe(false);
      const x = rand(2 * 3 * 25, 3);
      const ref = await run(encodeModel(proto), 'X', x, [2, 3, 5, 5]);
      const got = await run(encodeModel(modelToProto(model)), 'X', x, [2, 3, 5, 5]);
      expect(maxRel(got, ref)).toBeLessThan(1e-5);
    }
  });

  it('Gemm (transB, alpha, beta, C) + BatchNormalization: folded, ORT output within 1e-5 relative', async () => {
    const N = 5;
    const K = 7;
    const bn = bnParams(N, 20);
    const proto = makeModel({
      nodes: [
        {
          opType: 'Gemm',
          inputs: ['X', 'W', 'C'],
          outputs: ['g'],
          attributes: {
            transB: 1,
            alpha: makeAttribute('alpha', 0.7, 'float'),
            beta: makeAttribute('beta', 1.5, 'float'),
          },
        },
        { opType: 'BatchNormalization', inputs: ['g', 'gamma', 'beta', 'mean', 'var'], outputs: ['Y'] },
      ],
      inputs: [{ name: 'X', dtype: 'float32', dims: [3, K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: [3, N] }],
      initializers: {
        W: makeTensor('float32', [N, K], rand(N * K, 4)),
        C: makeTensor('float32', [N], rand(N, 5)),
        ...bn,
      },
      opsets: { '': 17 },
    });
    const model = modelFromProto(proto);
    expect(foldBatchNorm(model)).toBe(1);
    const x = rand(3 * K, 6);
    const ref = await run(encodeModel(proto), 'X', x, [3, K]);
    const got = await run(encodeModel(modelToProto(model)), 'X', x, [3, K]);
    expect(maxRel(got, ref)).toBeLessThan(1e-5);
  });

  it('leaves a BatchNormalization whose Conv output has another reader', () => {
    const C = 2;
    const model = modelFromProto(
      makeModel({
        nodes: [
          { opType: 'Conv', inputs: ['X', 'W'], outputs: ['c'] },
          { opType: 'BatchNormalization', inputs: ['c', 'gamma', 'beta', 'mean', 'var'], outputs: ['Y'] },
          { opType: 'Relu', inputs: ['c'], outputs: ['Z'] },
        ],
        inputs: [{ name: 'X', dtype: 'float32', dims: [1, 1, 3, 3] }],
        outputs: [
          { name: 'Y', dtype: 'float32' },
          { name: 'Z', dtype: 'float32' },
        ],
        initializers: { W: makeTensor('float32', [C, 1, 1, 1], rand(C, 1)), ...bnParams(C, 1) },
      }),
    );
    expect(foldBatchNorm(model)).toBe(0);
    expect(model.graph.nodes).toHaveLength(3);
  });

  it('digits CNN: both BatchNormalizations folded, logits within 1e-5 relative in ORT', async () => {
    const bytes = readFileSync(new URL('../../models/cnn.onnx', import.meta.url));
    const model = modelFromProto(decodeModel(bytes));
    expect(foldBatchNorm(model)).toBe(2);
    const x = rand(4 * 64, 9, 0, 1);
    const ref = await run(bytes, 'input', x, [4, 1, 8, 8]);
    const got = await run(encodeModel(modelToProto(model)), 'input', x, [4, 1, 8, 8]);
    expect(maxRel(got, ref)).toBeLessThan(1e-5);
  });
});

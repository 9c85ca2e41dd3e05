import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel, type NodeSpec } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { readNpy } from '../src/io/npy/npy.js';
import { runModel } from '../src/interp/run.js';
import { mulberry32 } from '../src/quant/prng.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { REPO } from './helpers/cli.js';

// The float ops of the reference interpreter against ONNX Runtime's CPU kernels. The interpreter
// accumulates in float64 and rounds once; ORT accumulates in fp32, so agreement is to ~1e-5.

function rng(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => uniform() * 2 - 1;
}

function randomTensor(dims: number[], seed: number): Tensor {
  const r = rng(seed);
  const n = dims.reduce((p, d) => p * d, 1);
  return { dtype: 'float32', dims, data: Float32Array.from({ length: n }, r) };
}

async function ortRun(bytes: Uint8Array, feeds: Record<string, Tensor>): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(bytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor('float32', t.data as Float32Array, [...t.dims]);
  const out = await session.run(ortFeeds);
  return session.outputNames.map((n) => out[n]?.data as Float32Array);
}

function expectClose(got: Float32Array, want: Float32Array, rel = 1e-5) {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
  expect(worst).toBeLessThanOrEqual(rel * Math.max(scale, 1e-30));
}

const CASES: { name: string; node: NodeSpec; inputs: Record<string, number[]>; outDims: number[] }[] = [
  {
    name: 'MatMul 3-D × 2-D',
    node: { opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] },
    inputs: { a: [2, 3, 17], b: [17, 5] },
    outDims: [2, 3, 5],
  },
  {
    name: 'Gemm transB alpha beta',
    node: { opType: 'Gemm', inputs: ['a', 'b', 'c'], outputs: ['y'], attributes: { transB: 1, alpha: 0.5, beta: 1.5 } },
    inputs: { a: [4, 9], b: [6, 9], c: [6] },
    outDims: [4, 6],
  },
  {
    name: 'Conv pads strides dilations group',
    node: {
      opType: 'Conv',
      inputs: ['x', 'w', 'bias'],
      outputs: ['y'],
      attributes: { pads: [1, 2, 1, 0], strides: [2, 1], dilations: [1, 2], group: 2 },
    },
    inputs: { x: [2, 4, 7, 8], w: [6, 2, 3, 3], bias: [6] },
    outDims: [2, 6, 4, 6],
  },
  {
    name: 'Add broadcast',
    node: { opType: 'Add', inputs: ['a', 'b'], outputs: ['y'] },
    inputs: { a: [3, 1, 5], b: [4, 1] },
    outDims: [3, 4, 5],
  },
  {
    name: 'Mul broadcast',
    node: { opType: 'Mul', inputs: ['a', 'b'], outputs: ['y'] },
    inputs: { a: [2, 5], b: [5] },
    outDims: [2, 5],
  },
  {
    name: 'MaxPool ceil_mode pads',
    node: {
      opType: 'MaxPool',
      inputs: ['x'],
      outputs: ['y'],
      attributes: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 0, 0], ceil_mode: 1 },
    },
    inputs: { x: [1, 2, 6, 7] },
    outDims: [1, 2, 3, 4],
  },
  {
    name: 'BatchNormalization',
    node: {
      opType: 'BatchNormalization',
      inputs: ['x', 's', 'b', 'm', 'v'],
      outputs: ['y'],
      attributes: { epsilon: 1e-3 },
    },
    inputs: { x: [2, 3, 4], s: [3], b: [3], m: [3], v: [3] },
    outDims: [2, 3, 4],
  },
];

describe('reference interpreter float ops agree with ONNX Runtime', () => {
  for (const [k, c] of CASES.entries()) {
    it(c.name, async () => {
      const feeds: Record<string, Tensor> = {};
      for (const [i, [name, dims]] of Object.entries(c.inputs).entries()) {
        const t = randomTensor(dims, 1000 * k + i);
        // Variances must be positive.
        if (name === 'v')
          (t.data as Float32Array).forEach((x, j, a) => {
            a[j] = Math.abs(x) + 0.1;
          });
        feeds[name] = t;
      }
      const model = makeModel({
        nodes: [c.node],
        inputs: Object.entries(c.inputs).map(([name, dims]) => ({ name, dtype: 'float32' as const, dims })),
        outputs: [{ name: 'y', dtype: 'float32', dims: c.outDims }],
        opsets: { '': 17 },
        irVersion: 8,
      });
      const bytes = encodeModel(model);
      const [want] = await ortRun(bytes, feeds);
      const got = runModel(decodeModel(bytes), new Map(Object.entries(feeds))).get('y');
      expect(got?.dims).toEqual(c.outDims);
      expectClose(got!.data as Float32Array, want!);
    });
  }

  it("the shipped digits CNN gives ORT's logits on its test set", async () => {
    const bytes = readFileSync(join(REPO, 'models/cnn.onnx'));
    const x = readNpy(readFileSync(join(REPO, 'models/cnn-test-x.npy')));
    const batch: Tensor = {
      dtype: 'float32',
      dims: [16, ...x.dims.slice(1)],
      data: (x.data as Float32Array).subarray(0, 16 * 64),
    };
    const model = decodeModel(bytes);
    const inputName = model.graph!.input[0]!.name;
    const [want] = await ortRun(bytes, { [inputName]: batch });
    const got = runModel(model, new Map([[inputName, batch]])).get(model.graph!.output[0]!.name);
    expectClose(got!.data as Float32Array, want!, 1e-4);
  });
});

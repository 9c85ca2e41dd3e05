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

const i64 = (...v: number[]): Tensor => ({ dtype: 'int64', dims: [v.length], data: BigInt64Array.from(v, BigInt) });

const CASES: {
  name: string;
  node: NodeSpec;
  inputs: Record<string, number[]>;
  outDims: number[];
  initializers?: Record<string, Tensor>;
  opset?: number;
}[] = [
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
  {
    name: 'Div broadcast',
    node: { opType: 'Div', inputs: ['a', 'b'], outputs: ['y'] },
    inputs: { a: [3, 4], b: [4] },
    outDims: [3, 4],
  },
  {
    name: 'Sub broadcast',
    node: { opType: 'Sub', inputs: ['a', 'b'], outputs: ['y'] },
    inputs: { a: [3, 1], b: [2, 1, 4] },
    outDims: [2, 3, 4],
  },
  ...(['Erf', 'Exp', 'Tanh', 'Sigmoid', 'Neg', 'Identity'] as const).map((op) => ({
    name: op,
    node: { opType: op, inputs: ['x'], outputs: ['y'] },
    inputs: { x: [4, 5] },
    outDims: [4, 5],
  })),
  ...(['none', 'tanh'] as const).map((approximate) => ({
    name: `Gelu (opset 20, approximate ${approximate})`,
    node: { opType: 'Gelu', inputs: ['x'], outputs: ['y'], attributes: { approximate } },
    inputs: { x: [3, 7] },
    outDims: [3, 7],
    opset: 20,
  })),
  {
    name: 'Softmax axis 1 of 3-D',
    node: { opType: 'Softmax', inputs: ['x'], outputs: ['y'], attributes: { axis: 1 } },
    inputs: { x: [2, 5, 3] },
    outDims: [2, 5, 3],
  },
  {
    name: 'Softmax opset 11 (flattened at axis)',
    node: { opType: 'Softmax', inputs: ['x'], outputs: ['y'], attributes: { axis: 1 } },
    inputs: { x: [2, 5, 3] },
    outDims: [2, 5, 3],
    opset: 11,
  },
  {
    name: 'LayerNormalization over the last two axes',
    node: {
      opType: 'LayerNormalization',
      inputs: ['x', 's', 'b'],
      outputs: ['y'],
      attributes: { axis: -2, epsilon: 1e-3 },
    },
    inputs: { x: [2, 3, 4, 5], s: [4, 5], b: [5] },
    outDims: [2, 3, 4, 5],
  },
  {
    name: 'Gather axis 1, negative and 2-D indices',
    node: { opType: 'Gather', inputs: ['x', 'idx'], outputs: ['y'], attributes: { axis: 1 } },
    inputs: { x: [2, 5, 3] },
    initializers: { idx: { dtype: 'int64', dims: [2, 2], data: BigInt64Array.of(0n, -1n, 3n, 3n) } },
    outDims: [2, 2, 2, 3],
  },
  {
    name: 'Slice negative steps and clamped ends',
    node: { opType: 'Slice', inputs: ['x', 'st', 'en', 'ax', 'sp'], outputs: ['y'] },
    inputs: { x: [4, 6, 5] },
    initializers: { st: i64(-1, 1), en: i64(-100, 1000), ax: i64(1, 2), sp: i64(-2, 2) },
    outDims: [4, 3, 2],
  },
  {
    name: 'Concat axis -2',
    node: { opType: 'Concat', inputs: ['a', 'b'], outputs: ['y'], attributes: { axis: -2 } },
    inputs: { a: [2, 3, 4], b: [2, 1, 4] },
    outDims: [2, 4, 4],
  },
  {
    name: 'Expand',
    node: { opType: 'Expand', inputs: ['x', 'shape'], outputs: ['y'] },
    inputs: { x: [3, 1] },
    initializers: { shape: i64(2, 1, 4) },
    outDims: [2, 3, 4],
  },
  {
    name: 'Where broadcast',
    node: { opType: 'Where', inputs: ['c', 'a', 'b'], outputs: ['y'] },
    inputs: { a: [2, 3], b: [3] },
    initializers: { c: { dtype: 'bool', dims: [3], data: Uint8Array.of(1, 0, 1) } },
    outDims: [2, 3],
  },
  {
    name: 'Unsqueeze negative axes',
    node: { opType: 'Unsqueeze', inputs: ['x', 'axes'], outputs: ['y'] },
    inputs: { x: [3, 4] },
    initializers: { axes: i64(0, -1) },
    outDims: [1, 3, 4, 1],
  },
  {
    name: 'Squeeze',
    node: { opType: 'Squeeze', inputs: ['x', 'axes'], outputs: ['y'] },
    inputs: { x: [3, 1, 4, 1] },
    initializers: { axes: i64(-1, 1) },
    outDims: [3, 4],
  },
  {
    name: 'Transpose perm [1, 2, 0]',
    node: { opType: 'Transpose', inputs: ['x'], outputs: ['y'], attributes: { perm: [1, 2, 0] } },
    inputs: { x: [2, 3, 4] },
    outDims: [3, 4, 2],
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
        ...(c.initializers ? { initializers: c.initializers } : {}),
        opsets: { '': c.opset ?? 17 },
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

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

/** Runs a one-node model in ORT and in the interpreter on typed inputs (all graph inputs). */
async function bothRun(
  node: NodeSpec,
  feeds: Record<string, Tensor>,
  out: { dtype: Tensor['dtype']; dims: number[] },
  opsets: Record<string, number> = { '': 21 },
): Promise<{ got: Tensor; want: Tensor }> {
  const model = makeModel({
    nodes: [node],
    inputs: Object.entries(feeds).map(([name, t]) => ({ name, dtype: t.dtype, dims: [...t.dims] })),
    outputs: [{ name: 'y', ...out }],
    opsets,
    irVersion: 10,
  });
  const bytes = encodeModel(model);
  const session = await ort.InferenceSession.create(bytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims]);
  const y = (await session.run(ortFeeds)).y!;
  const want: Tensor = { dtype: out.dtype, dims: y.dims as number[], data: y.data as Tensor['data'] };
  const got = runModel(decodeModel(bytes), new Map(Object.entries(feeds))).get('y')!;
  return { got, want };
}

function ints(dtype: 'uint8' | 'int8' | 'int32', dims: number[], lo: number, hi: number, seed: number): Tensor {
  const r = mulberry32(seed);
  const n = dims.reduce((p, d) => p * d, 1);
  const v = Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
  const data = dtype === 'uint8' ? Uint8Array.from(v) : dtype === 'int8' ? Int8Array.from(v) : Int32Array.from(v);
  return { dtype, dims, data };
}
const f32 = (dims: number[], ...v: number[]): Tensor => ({ dtype: 'float32', dims, data: Float32Array.from(v) });

// Weights stay within ±64: no pair of u8·s8 products reaches int16's limit, so ORT's AVX2
// kernels (which saturate such pairs) give the exact results too and these hold on every CPU.
describe('reference interpreter integer ops give ORT’s codes bit for bit', () => {
  it('QLinearConv u8 × s8 per channel, bias, pads, strides, group 2', async () => {
    const feeds = {
      x: ints('uint8', [2, 4, 7, 6], 0, 255, 1),
      xs: f32([], 0.02),
      xz: ints('uint8', [], 120, 120, 2),
      w: ints('int8', [6, 2, 3, 3], -64, 64, 3),
      ws: f32([6], 0.011, 0.013, 0.007, 0.02, 0.009, 0.015),
      wz: ints('int8', [6], 0, 0, 4),
      ys: f32([], 0.05),
      yz: ints('uint8', [], 128, 128, 5),
      b: ints('int32', [6], -3000, 3000, 6),
    };
    const node: NodeSpec = {
      opType: 'QLinearConv',
      inputs: ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'b'],
      outputs: ['y'],
      attributes: { group: 2, pads: [1, 0, 1, 2], strides: [2, 1] },
    };
    const { got, want } = await bothRun(node, feeds, { dtype: 'uint8', dims: [2, 6, 4, 6] });
    expect(got.dims).toEqual(want.dims);
    expect(Array.from(got.data as Uint8Array)).toEqual(Array.from(want.data as Uint8Array));
  });

  it('QLinearMatMul 3-D s8: ORT rounds the fp32 product (acc 5 · fp32(0.1) is a tie there, goes to even)', async () => {
    const a = ints('int8', [2, 3, 20], -128, 127, 7);
    (a.data as Int8Array).set([5, ...new Array<number>(19).fill(0)], 0); // row 0 of batch 0: acc = 5·1
    const b = ints('int8', [20, 4], -64, 64, 8);
    (b.data as Int8Array)[0] = 1;
    const feeds = {
      a,
      as: f32([], 0.1),
      az: ints('int8', [], 0, 0, 0),
      b,
      bs: f32([], 1),
      bz: ints('int8', [], 0, 0, 0),
      ys: f32([], 1),
      yz: ints('int8', [], 0, 0, 0),
    };
    const node: NodeSpec = {
      opType: 'QLinearMatMul',
      inputs: ['a', 'as', 'az', 'b', 'bs', 'bz', 'ys', 'yz'],
      outputs: ['y'],
    };
    const { got, want } = await bothRun(node, feeds, { dtype: 'int8', dims: [2, 3, 4] });
    expect((want.data as Int8Array)[0]).toBe(0);
    expect(Array.from(got.data as Int8Array)).toEqual(Array.from(want.data as Int8Array));
  });

  it('MatMulInteger u8 × s8 with a per-column B zero point', async () => {
    const feeds = {
      a: ints('uint8', [3, 5, 33], 0, 255, 9),
      b: ints('int8', [33, 7], -64, 64, 10),
      az: ints('uint8', [], 17, 17, 0),
      bz: ints('int8', [7], -3, 3, 11),
    };
    const node: NodeSpec = { opType: 'MatMulInteger', inputs: ['a', 'b', 'az', 'bz'], outputs: ['y'] };
    const { got, want } = await bothRun(node, feeds, { dtype: 'int32', dims: [3, 5, 7] });
    expect(Array.from(got.data as Int32Array)).toEqual(Array.from(want.data as Int32Array));
  });

  it('ConvInteger u8 × u8 with padding and zero points', async () => {
    const feeds = {
      x: ints('uint8', [1, 3, 6, 6], 0, 255, 12),
      w: ints('uint8', [4, 3, 3, 3], 0, 255, 13),
      xz: ints('uint8', [], 100, 100, 0),
      wz: ints('uint8', [], 128, 128, 0),
    };
    const node: NodeSpec = {
      opType: 'ConvInteger',
      inputs: ['x', 'w', 'xz', 'wz'],
      outputs: ['y'],
      attributes: { pads: [1, 1, 1, 1] },
    };
    const { got, want } = await bothRun(node, feeds, { dtype: 'int32', dims: [1, 4, 6, 6] });
    expect(Array.from(got.data as Int32Array)).toEqual(Array.from(want.data as Int32Array));
  });
});

describe('com.microsoft block-quantized ops agree with ORT (accuracy level 0)', () => {
  const bytes = (n: number, seed: number) => ints('uint8', [n], 0, 255, seed);
  for (const bits of [2, 4, 8]) {
    it(`MatMulNBits bits ${bits}, K = 40 not a multiple of block 16, zero points, bias`, async () => {
      const K = 40;
      const N = 5;
      const bs = 16;
      const kBlocks = Math.ceil(K / bs);
      const blob = (bs * bits) / 8;
      const feeds = {
        a: randomTensor([3, K], 20 + bits),
        b: { ...bytes(N * kBlocks * blob, 21), dims: [N, kBlocks, blob] },
        s: randomTensor([N * kBlocks], 22),
        z: bytes(N * Math.ceil((kBlocks * bits) / 8), 23),
        bias: randomTensor([N], 24),
      };
      const node: NodeSpec = {
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        inputs: ['a', 'b', 's', 'z', '', 'bias'],
        outputs: ['y'],
        attributes: { K, N, bits, block_size: bs, accuracy_level: 0 },
      };
      const { got, want } = await bothRun(
        node,
        feeds,
        { dtype: 'float32', dims: [3, N] },
        { '': 21, 'com.microsoft': 1 },
      );
      expectClose(got.data as Float32Array, want.data as Float32Array);
    });
  }
  for (const quantType of [0, 1]) {
    it(`MatMulBnb4 quant_type ${quantType} (${quantType ? 'NF4' : 'FP4'}), N·K not a multiple of the block`, async () => {
      const K = 24;
      const N = 3;
      const bs = 16;
      const feeds = {
        a: randomTensor([2, K], 30),
        b: bytes(Math.ceil((N * K) / 2), 31),
        absmax: randomTensor([Math.ceil((N * K) / bs)], 32),
      };
      const node: NodeSpec = {
        opType: 'MatMulBnb4',
        domain: 'com.microsoft',
        inputs: ['a', 'b', 'absmax'],
        outputs: ['y'],
        attributes: { K, N, block_size: bs, quant_type: quantType },
      };
      const { got, want } = await bothRun(
        node,
        feeds,
        { dtype: 'float32', dims: [2, N] },
        { '': 21, 'com.microsoft': 1 },
      );
      expectClose(got.data as Float32Array, want.data as Float32Array);
    });
  }
  it('GatherBlockQuantized uint8 4-bit, partial last block, zero points', async () => {
    const feeds = {
      data: { ...bytes(5 * 20, 40), dims: [5, 20] },
      idx: { dtype: 'int64' as const, dims: [2, 2], data: BigInt64Array.of(4n, 0n, -1n, 2n) },
      s: randomTensor([5, 3], 41),
      z: { ...bytes(5 * 2, 42), dims: [5, 2] },
    };
    const node: NodeSpec = {
      opType: 'GatherBlockQuantized',
      domain: 'com.microsoft',
      inputs: ['data', 'idx', 's', 'z'],
      outputs: ['y'],
      attributes: { bits: 4, block_size: 16, gather_axis: 0, quantize_axis: 1 },
    };
    const { got, want } = await bothRun(
      node,
      feeds,
      { dtype: 'float32', dims: [2, 2, 40] },
      { '': 21, 'com.microsoft': 1 },
    );
    expect(Array.from(got.data as Float32Array)).toEqual(Array.from(want.data as Float32Array));
  });
});

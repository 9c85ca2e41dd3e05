import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel, type NodeSpec } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { runModel } from '../src/interp/run.js';
import { mulberry32 } from '../src/quant/prng.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { expectInterpEqualsOrt } from './helpers/one-node-vs-ort.js';

/*
 * The ops of int8-dynamic's per-token form (Abs, ReduceMax, Max, Round) and of its contrib form
 * (com.microsoft DynamicQuantizeMatMul) against ONNX Runtime's operators: equal outputs. Weights
 * stay within ±64 so no u8×s8 pair saturates on AVX2 and the integer sums agree on every CPU.
 */

function both(
  node: NodeSpec,
  feeds: Record<string, Tensor>,
  opsets: Record<string, number> = { '': 17 },
  initializers: Record<string, Tensor> = {},
): Promise<void> {
  return expectInterpEqualsOrt(node, feeds, { out: 'float32', opsets, initializers });
}

const r = mulberry32(17);
const count = (dims: number[]) => dims.reduce((p, d) => p * d, 1);
const f32 = (dims: number[], scale = 1): Tensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from({ length: count(dims) }, () => (r() * 2 - 1) * scale),
});
const i8 = (dims: number[], lo: number, hi: number): Tensor => ({
  dtype: 'int8',
  dims,
  data: Int8Array.from({ length: count(dims) }, () => lo + Math.floor(r() * (hi - lo + 1))),
});

describe('int8-dynamic’s ops give ORT’s outputs exactly', () => {
  it('Abs, and Round with halves (to even)', async () => {
    await both({ opType: 'Abs', inputs: ['x'], outputs: ['y'] }, { x: f32([3, 7]) });
    const halves: Tensor = {
      dtype: 'float32',
      dims: [8],
      data: Float32Array.of(0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 7.75),
    };
    await both({ opType: 'Round', inputs: ['x'], outputs: ['y'] }, { x: halves });
  });
  it('Max with broadcasting', async () => {
    await both(
      { opType: 'Max', inputs: ['a', 'b', 'c'], outputs: ['y'] },
      { a: f32([2, 3, 4]), b: f32([3, 1]), c: f32([]) },
    );
  });
  it('ReduceMax: axes attribute (opset 17) and input (opset 18), keepdims 0 and 1', async () => {
    const x = f32([2, 3, 5]);
    await both({ opType: 'ReduceMax', inputs: ['x'], outputs: ['y'], attributes: { axes: [-1], keepdims: 1 } }, { x });
    await both(
      { opType: 'ReduceMax', inputs: ['x'], outputs: ['y'], attributes: { axes: [0, 2], keepdims: 0 } },
      { x },
    );
    await both(
      { opType: 'ReduceMax', inputs: ['x', 'axes'], outputs: ['y'], attributes: { keepdims: 1 } },
      { x, axes: { dtype: 'int64', dims: [1], data: BigInt64Array.of(1n) } },
      { '': 18 },
    );
  });
  it('DynamicQuantizeLinear rounds max − min to float32 before dividing (the scale ORT gives)', async () => {
    // fp32(fp32(max − min) / 255) is one ulp above fp32((max − min) / 255) for these two.
    const x: Tensor = { dtype: 'float32', dims: [2], data: Float32Array.of(-2.9450619220733643, 2.9882912635803223) };
    const bytes = encodeModel(
      makeModel({
        nodes: [{ opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['q', 'y', 'z'] }],
        inputs: [{ name: 'x', dtype: 'float32', dims: [2] }],
        outputs: [
          { name: 'q', dtype: 'uint8' },
          { name: 'y', dtype: 'float32' },
          { name: 'z', dtype: 'uint8' },
        ],
        opsets: { '': 17 },
        irVersion: 10,
      }),
    );
    const session = await ort.InferenceSession.create(bytes);
    const want = (await session.run({ x: new ort.Tensor('float32', x.data as Float32Array, [2]) })).y!
      .data as Float32Array;
    await session.release();
    const got = runModel(decodeModel(bytes), new Map([['x', x]])).get('y')!.data as Float32Array;
    expect(got[0]).toBe(want[0]);
    expect(got[0]).not.toBe(Math.fround((2.9882912635803223 + 2.9450619220733643) / 255));
  });
  // Weights, scales and zero points as initializers, as the quantizer writes them (ORT's kernel
  // forms its per-column multipliers differently for scales given at run time).
  it('DynamicQuantizeMatMul: per-column int8 weights, scales and zero points, bias', async () => {
    const K = 40;
    const N = 7;
    await both(
      {
        opType: 'DynamicQuantizeMatMul',
        domain: 'com.microsoft',
        inputs: ['a', 'b', 's', 'z', 'bias'],
        outputs: ['y'],
      },
      { a: f32([2, 3, K], 3) },
      { '': 17, 'com.microsoft': 1 },
      {
        b: i8([K, N], -64, 64),
        s: { dtype: 'float32', dims: [N], data: Float32Array.from({ length: N }, () => 0.001 + r() * 0.01) },
        z: i8([N], -3, 3),
        bias: f32([N]),
      },
    );
  });
});

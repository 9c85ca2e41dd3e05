import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel, type NodeSpec } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { runModel } from '../src/interp/run.js';
import { mulberry32 } from '../src/quant/prng.js';
import type { Tensor } from '../src/tensor/tensor.js';

/*
 * BitShift, GatherElements and ScatterND (what k-means codebooks and sparse outliers rebuild their
 * weights with) against ONNX Runtime's operators: they move values, so the outputs must be equal.
 */

async function both(node: NodeSpec, feeds: Record<string, Tensor>, out: Tensor['dtype']) {
  const bytes = encodeModel(
    makeModel({
      nodes: [node],
      inputs: Object.entries(feeds).map(([name, t]) => ({ name, dtype: t.dtype, dims: [...t.dims] })),
      outputs: [{ name: 'y', dtype: out }],
      opsets: { '': 18 },
      irVersion: 10,
    }),
  );
  const session = await ort.InferenceSession.create(bytes);
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims]);
  const y = (await session.run(ortFeeds)).y!;
  await session.release();
  const got = runModel(decodeModel(bytes), new Map(Object.entries(feeds))).get('y')!;
  expect(got.dims).toEqual(y.dims);
  expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(Array.from(y.data as ArrayLike<number | bigint>));
}

const r = mulberry32(3);
const u8 = (dims: number[], max = 256): Tensor => ({
  dtype: 'uint8',
  dims,
  data: Uint8Array.from({ length: dims.reduce((p, d) => p * d, 1) }, () => Math.floor(r() * max)),
});
const f32 = (dims: number[]): Tensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from({ length: dims.reduce((p, d) => p * d, 1) }, () => r() * 2 - 1),
});
const i64 = (dims: number[], v: number[]): Tensor => ({ dtype: 'int64', dims, data: BigInt64Array.from(v, BigInt) });

describe('index ops give ORT’s outputs exactly', () => {
  for (const direction of ['LEFT', 'RIGHT'])
    it(`BitShift uint8 ${direction}, broadcast, shifts past the width`, async () => {
      const shifts: Tensor = { dtype: 'uint8', dims: [1, 4], data: Uint8Array.of(0, 3, 4, 7) };
      await both(
        { opType: 'BitShift', inputs: ['x', 's'], outputs: ['y'], attributes: { direction } },
        { x: u8([5, 1]), s: shifts },
        'uint8',
      );
    });
  it('GatherElements axis 1 with negative indices, axis 0', async () => {
    const idx = i64(
      [3, 5],
      Array.from({ length: 15 }, () => Math.floor(r() * 8) - 4),
    );
    await both(
      { opType: 'GatherElements', inputs: ['d', 'i'], outputs: ['y'], attributes: { axis: 1 } },
      { d: f32([3, 4]), i: idx },
      'float32',
    );
    const idx0 = i64(
      [2, 4],
      Array.from({ length: 8 }, () => Math.floor(r() * 3)),
    );
    await both(
      { opType: 'GatherElements', inputs: ['d', 'i'], outputs: ['y'], attributes: { axis: 0 } },
      { d: f32([3, 4]), i: idx0 },
      'float32',
    );
  });
  it('ScatterND: elements of a matrix, and rows of a 3-D tensor', async () => {
    await both(
      { opType: 'ScatterND', inputs: ['d', 'i', 'u'], outputs: ['y'] },
      { d: f32([4, 5]), i: i64([3, 2], [0, 1, 3, 4, -1, 0]), u: f32([3]) },
      'float32',
    );
    await both(
      { opType: 'ScatterND', inputs: ['d', 'i', 'u'], outputs: ['y'] },
      { d: f32([3, 2, 4]), i: i64([2, 1], [2, 0]), u: f32([2, 2, 4]) },
      'float32',
    );
  });
});

import { describe, it } from 'vitest';
import type { NodeSpec } from '../src/io/onnx/build.js';
import { mulberry32 } from '../src/quant/prng.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { expectInterpEqualsOrt } from './helpers/one-node-vs-ort.js';

/*
 * BitShift, GatherElements and ScatterND (what k-means codebooks and sparse outliers rebuild their
 * weights with) against ONNX Runtime's operators: they move values, so the outputs must be equal.
 */

function both(node: NodeSpec, feeds: Record<string, Tensor>, out: Tensor['dtype']): Promise<void> {
  return expectInterpEqualsOrt(node, feeds, { out, opsets: { '': 18 } });
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

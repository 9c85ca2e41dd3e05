import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeTensor } from '../../tensor/tensor.js';
import { makeModel } from './build.js';
import { decodeModel, encodeModel } from './proto.js';

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return await session.run(feeds) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

describe('makeModel builds models ONNX Runtime runs', () => {
  it('Add of two inputs', async () => {
    const bytes = encodeModel(makeModel({
      nodes: [{ opType: 'Add', inputs: ['a', 'b'], outputs: ['c'] }],
      inputs: [{ name: 'a', dtype: 'float32', dims: [2, 2] }, { name: 'b', dtype: 'float32', dims: [2, 2] }],
      outputs: [{ name: 'c', dtype: 'float32', dims: [2, 2] }],
    }));
    const out = await run(bytes, {
      a: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]),
      b: new ort.Tensor('float32', Float32Array.from([10, 20, 30, 40]), [2, 2]),
    });
    expect(out.c?.dims).toEqual([2, 2]);
    expect(Array.from(out.c?.data as Float32Array)).toEqual([11, 22, 33, 44]);
  });

  it('int8 and int4 initializers, attributes and symbolic dims: DequantizeLinear then MatMul', async () => {
    // w int8 [[-2, 4], [6, -8]] with scale 0.5 -> [[-1, 2], [3, -4]]; x [[1, 1], [2, 0]] -> x·w = [[2, -2], [-2, 4]].
    // The int4 initializer goes through DequantizeLinear too: [-8, 7, 1] * 2 = [-16, 14, 2].
    const bytes = encodeModel(makeModel({
      nodes: [
        { opType: 'DequantizeLinear', inputs: ['w', 'scale'], outputs: ['wf'], attributes: { axis: 1 } },
        { opType: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'], name: 'mm' },
        { opType: 'DequantizeLinear', inputs: ['q4', 'scale4'], outputs: ['v'] },
      ],
      inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', 2] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', 2] }, { name: 'v', dtype: 'float32', dims: [3] }],
      initializers: {
        w: makeTensor('int8', [2, 2], new Int8Array([-2, 4, 6, -8])),
        scale: makeTensor('float32', [], new Float32Array([0.5])),
        q4: makeTensor('int4', [3], new Int8Array([-8, 7, 1])),
        scale4: makeTensor('float32', [], new Float32Array([2])),
      },
    }));
    const model = decodeModel(bytes);
    expect(model.graph?.input[0]?.type?.value.case).toBe('tensorType');
    const out = await run(bytes, { x: new ort.Tensor('float32', Float32Array.from([1, 1, 2, 0]), [2, 2]) });
    expect(Array.from(out.y?.data as Float32Array)).toEqual([2, -2, -2, 4]);
    expect(Array.from(out.v?.data as Float32Array)).toEqual([-16, 14, 2]);
  });
});

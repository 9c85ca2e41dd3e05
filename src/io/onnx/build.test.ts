import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { DType } from '../../tensor/dtype.js';
import { makeTensor, type TensorData } from '../../tensor/tensor.js';
import { makeModel } from './build.js';
import { decodeModel, encodeModel } from './proto.js';
import { tensorToProto } from './tensor.js';

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

describe('makeModel builds models ONNX Runtime runs', () => {
  it('Add of two inputs', async () => {
    const bytes = encodeModel(
      makeModel({
        nodes: [{ opType: 'Add', inputs: ['a', 'b'], outputs: ['c'] }],
        inputs: [
          { name: 'a', dtype: 'float32', dims: [2, 2] },
          { name: 'b', dtype: 'float32', dims: [2, 2] },
        ],
        outputs: [{ name: 'c', dtype: 'float32', dims: [2, 2] }],
      }),
    );
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
    const bytes = encodeModel(
      makeModel({
        nodes: [
          { opType: 'DequantizeLinear', inputs: ['w', 'scale'], outputs: ['wf'], attributes: { axis: 1 } },
          { opType: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'], name: 'mm' },
          { opType: 'DequantizeLinear', inputs: ['q4', 'scale4'], outputs: ['v'] },
        ],
        inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', 2] }],
        outputs: [
          { name: 'y', dtype: 'float32', dims: ['batch', 2] },
          { name: 'v', dtype: 'float32', dims: [3] },
        ],
        initializers: {
          w: makeTensor('int8', [2, 2], new Int8Array([-2, 4, 6, -8])),
          scale: makeTensor('float32', [], new Float32Array([0.5])),
          q4: makeTensor('int4', [3], new Int8Array([-8, 7, 1])),
          scale4: makeTensor('float32', [], new Float32Array([2])),
        },
      }),
    );
    const model = decodeModel(bytes);
    expect(model.graph?.input[0]?.type?.value.case).toBe('tensorType');
    const out = await run(bytes, { x: new ort.Tensor('float32', Float32Array.from([1, 1, 2, 0]), [2, 2]) });
    expect(Array.from(out.y?.data as Float32Array)).toEqual([2, -2, -2, 4]);
    expect(Array.from(out.v?.data as Float32Array)).toEqual([-16, 14, 2]);
  });
});

/**
 * ONNX Runtime as the independent reader of what tensorToProto writes: each initializer, in
 * raw_data and in typed-field form, goes through Cast to float32 and must come out as the value
 * its bit pattern stands for (format tables of the ONNX float8/float4/int4 spec pages).
 * float4e2m1, float8e8m0, int2 and uint2 are left out: ONNX Runtime 1.30's Cast rejects them
 * ("Type 'tensor(int2)' ... is invalid"); the conformance files and the hand-worked table in
 * tensor.test.ts pin those instead.
 */
describe('ONNX Runtime reads the initializers tensorToProto writes', () => {
  const cases: [DType, TensorData, number[]][] = [
    ['float64', new Float64Array([1.5, -2]), [1.5, -2]],
    ['float16', new Uint16Array([0x3c00, 0xc000]), [1, -2]],
    ['bfloat16', new Uint16Array([0x3f80, 0xc000]), [1, -2]],
    ['float8e4m3fn', new Uint8Array([0x38, 0xc0]), [1, -2]],
    ['float8e4m3fnuz', new Uint8Array([0x40, 0xc8]), [1, -2]],
    ['float8e5m2', new Uint8Array([0x3c, 0xc0]), [1, -2]],
    ['float8e5m2fnuz', new Uint8Array([0x40, 0xc4]), [1, -2]],
    ['int4', new Int8Array([-8, 7, 1]), [-8, 7, 1]],
    ['uint4', new Uint8Array([15, 0, 3]), [15, 0, 3]],
    ['int8', new Int8Array([-128, 127]), [-128, 127]],
    ['uint8', new Uint8Array([0, 255]), [0, 255]],
    ['int16', new Int16Array([-32768, 7]), [-32768, 7]],
    ['uint16', new Uint16Array([65535, 1]), [65535, 1]],
    ['int32', new Int32Array([-5, 1 << 20]), [-5, 1 << 20]],
    ['uint32', new Uint32Array([4000000000, 3]), [4000000000, 3]],
    ['int64', new BigInt64Array([-3n, 1n << 40n]), [-3, 2 ** 40]],
    ['uint64', new BigUint64Array([1n << 40n, 9n]), [2 ** 40, 9]],
    ['bool', new Uint8Array([1, 0]), [1, 0]],
  ];

  it.each(
    cases.flatMap(([dtype, data, expected]) =>
      [true, false].map((useRawData) => ({ dtype, data, expected, useRawData })),
    ),
  )('$dtype (useRawData $useRawData)', async ({ dtype, data, expected, useRawData }) => {
    const model = makeModel({
      nodes: [{ opType: 'Cast', inputs: ['c'], outputs: ['y'], attributes: { to: 1 } }],
      inputs: [],
      outputs: [{ name: 'y', dtype: 'float32', dims: [data.length] }],
      opsets: { '': 21 },
    });
    model.graph?.initializer.push(tensorToProto(makeTensor(dtype, [data.length], data, 'c'), { useRawData }));
    const out = await run(encodeModel(model), {});
    expect(Array.from(out.y?.data as Float32Array)).toEqual(expected);
  });
});

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel, type NodeSpec } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import type { Tensor } from '../tensor/tensor.js';
import { modelFromProto } from './from-onnx.js';
import { broadcastShapes, inferShapes } from './shapes.js';

// Truth is ONNX Runtime: every intermediate is made a graph output (with no declared shape), the
// model runs, and each inferred dtype/dims must equal what ORT actually produced.

const f32 = (dims: number[]): Tensor => {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.5) };
};
const i64 = (v: number[]): Tensor => ({ dtype: 'int64', dims: [v.length], data: BigInt64Array.from(v, BigInt) });

const NODES: NodeSpec[] = [
  { opType: 'Conv', inputs: ['x', 'W'], outputs: ['c'], attributes: { pads: [1, 1, 1, 1], strides: [2, 2] } },
  { opType: 'Conv', inputs: ['x', 'W'], outputs: ['c_same'], attributes: { auto_pad: 'SAME_UPPER', strides: [3, 3] } },
  {
    opType: 'Conv',
    inputs: ['x', 'W'],
    outputs: ['c_valid'],
    attributes: { auto_pad: 'VALID', dilations: [2, 1], strides: [1, 2] },
  },
  { opType: 'BatchNormalization', inputs: ['c', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], outputs: ['bn'] },
  { opType: 'Relu', inputs: ['bn'], outputs: ['r'] },
  { opType: 'Flatten', inputs: ['r'], outputs: ['f'] },
  { opType: 'MatMul', inputs: ['f', 'W2'], outputs: ['m'] },
  { opType: 'Gemm', inputs: ['m', 'W3'], outputs: ['g'], attributes: { transB: 1 } },
  { opType: 'Add', inputs: ['g', 'b'], outputs: ['a'] },
  { opType: 'Sigmoid', inputs: ['a'], outputs: ['s'] },
  { opType: 'Transpose', inputs: ['s'], outputs: ['t'] },
  { opType: 'Reshape', inputs: ['t', 'shape'], outputs: ['rs'] },
  { opType: 'Unsqueeze', inputs: ['rs', 'axes0'], outputs: ['u'] },
  { opType: 'Squeeze', inputs: ['u', 'axes0'], outputs: ['sq'] },
  { opType: 'Concat', inputs: ['sq', 's'], outputs: ['cc'], attributes: { axis: 1 } },
  { opType: 'Softmax', inputs: ['cc'], outputs: ['sm'] },
  { opType: 'LayerNormalization', inputs: ['sm', 'ln_s', 'ln_b'], outputs: ['ln'] },
  { opType: 'Gelu', inputs: ['ln'], outputs: ['gl'] },
  { opType: 'Cast', inputs: ['gl'], outputs: ['half'], attributes: { to: 10 } },
  { opType: 'QuantizeLinear', inputs: ['gl', 'qs', 'qz'], outputs: ['q'] },
  { opType: 'DequantizeLinear', inputs: ['q', 'qs'], outputs: ['dq'] },
  { opType: 'MatMul', inputs: ['dq', 'vec'], outputs: ['mv'] },
  { opType: 'Gather', inputs: ['emb', 'ids'], outputs: ['ga'], attributes: { axis: 1 } },
  { opType: 'Mul', inputs: ['ga', 'col'], outputs: ['bc'] },
  { opType: 'Tanh', inputs: ['bc'], outputs: ['th'] },
  { opType: 'Greater', inputs: ['th', 'b'], outputs: ['gt'] },
];
const INITS: Record<string, Tensor> = {
  W: f32([4, 3, 3, 3]),
  bn_s: f32([4]),
  bn_b: f32([4]),
  bn_m: f32([4]),
  bn_v: { dtype: 'float32', dims: [4], data: Float32Array.of(1, 2, 3, 4) },
  W2: f32([64, 10]),
  W3: f32([5, 10]),
  b: f32([5]),
  shape: i64([-1, 5]),
  axes0: i64([0]),
  ln_s: f32([10]),
  ln_b: f32([10]),
  qs: { dtype: 'float32', dims: [], data: Float32Array.of(0.01) },
  qz: { dtype: 'int8', dims: [], data: Int8Array.of(3) },
  vec: f32([10]),
  emb: f32([7, 9, 5]),
  col: f32([7, 1, 1, 1]),
};

function model(batch: number | string) {
  return makeModel({
    nodes: NODES,
    inputs: [
      { name: 'x', dtype: 'float32', dims: [batch, 3, 8, 8] },
      { name: 'ids', dtype: 'int64', dims: [2, 4] },
    ],
    outputs: NODES.flatMap((n) => n.outputs).map((name) => ({ name, dtype: 'float32' as const })),
    initializers: INITS,
    opsets: { '': 21 },
  });
}

describe('inferShapes', () => {
  it('matches the dims and dtypes ONNX Runtime produces for every intermediate', async () => {
    const proto = model(2);
    // Declared output types are left unknown so ORT is the only source of truth.
    for (const o of proto.graph!.output) delete (o as { type?: unknown }).type;
    const ir = modelFromProto(proto);
    for (const o of ir.graph.outputs) {
      o.dtype = undefined;
      o.dims = undefined;
    }
    inferShapes(ir.graph, 21);
    const session = await ort.InferenceSession.create(encodeModel(proto));
    const res = await session.run({
      x: new ort.Tensor('float32', new Float32Array(2 * 3 * 64), [2, 3, 8, 8]),
      ids: new ort.Tensor('int64', BigInt64Array.of(0n, 1n, 8n, 2n, 3n, 4n, 5n, 6n), [2, 4]),
    });
    const got = Object.fromEntries(ir.graph.outputs.map((o) => [o.name, { dtype: o.dtype, dims: o.dims }]));
    const want = Object.fromEntries(
      session.outputNames.map((n) => [n, { dtype: res[n]!.type, dims: [...res[n]!.dims] }]),
    );
    expect(got).toEqual(want);
    await session.release();
  });

  it('keeps symbolic dims as names', () => {
    const ir = modelFromProto(model('batch'));
    for (const o of ir.graph.outputs) {
      o.dtype = undefined;
      o.dims = undefined;
    }
    inferShapes(ir.graph, 21);
    const dims = (name: string) => ir.graph.outputs.find((o) => o.name === name)?.dims;
    expect(dims('c')).toEqual(['batch', 4, 4, 4]);
    expect(dims('f')).toEqual(['batch', 64]);
    expect(dims('g')).toEqual(['batch', 5]);
    expect(dims('t')).toEqual([5, 'batch']);
    expect(dims('rs')).toEqual([null, 5]); // -1 of a symbolic total stays unknown
    expect(dims('ga')).toEqual([7, 2, 4, 5]);
  });

  it('broadcasts like numpy', () => {
    expect(
      broadcastShapes([
        [2, 1, 'n'],
        [3, 1],
      ]),
    ).toEqual([2, 3, 'n']);
    expect(
      broadcastShapes([
        ['a', 4],
        ['b', 4],
      ]),
    ).toEqual([null, 4]);
    expect(broadcastShapes([[], [5]])).toEqual([5]);
    expect(broadcastShapes([[5], undefined])).toBeUndefined();
  });
});

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { encodeModel, type ModelProto } from '../io/onnx/proto.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import type { Tensor } from '../tensor/tensor.js';
import { OpRegistry, defaultRegistry } from '../interp/registry.js';
import { foldConstants } from './fold-constants.js';

const f32 = (dims: number[], seed: number): Tensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.3 + seed)),
});
const i64 = (v: number[]): Tensor => ({ dtype: 'int64', dims: [v.length], data: BigInt64Array.from(v, BigInt) });

async function run(proto: ModelProto, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(encodeModel(proto));
  const out = await s.run({ x: new ort.Tensor('float32', x, [3, 8]) });
  await s.release();
  return out[s.outputNames[0]!]!.data as Float32Array;
}

describe('foldConstants', () => {
  it('folds Transpose/Reshape/Cast/Identity/Mul/Add of initializers; ORT outputs agree to 1e-5 relative', async () => {
    const proto = makeModel({
      nodes: [
        { opType: 'Transpose', inputs: ['Wt'], outputs: ['W'], name: 'tr' }, // nn.Linear export: W stored as [out, in]
        { opType: 'Mul', inputs: ['W', 'gain'], outputs: ['Wg'], name: 'mul' },
        { opType: 'MatMul', inputs: ['x', 'Wg'], outputs: ['h'], name: 'mm' },
        { opType: 'Reshape', inputs: ['b_flat', 'shape'], outputs: ['b'], name: 'rs' },
        { opType: 'Cast', inputs: ['b'], outputs: ['b32'], name: 'cast', attributes: { to: 1 } },
        { opType: 'Identity', inputs: ['b32'], outputs: ['b_id'], name: 'id' },
        { opType: 'Add', inputs: ['h', 'b_id'], outputs: ['hb'], name: 'add_bias' },
        { opType: 'Add', inputs: ['hb', 'x_bias'], outputs: ['y'], name: 'add_runtime' },
        { opType: 'Unsqueeze', inputs: ['b_flat', 'ax'], outputs: ['unused'], name: 'dead' },
      ],
      inputs: [
        { name: 'x', dtype: 'float32', dims: [3, 8] },
        { name: 'x_bias', dtype: 'float32', dims: [1, 5] },
      ],
      outputs: [{ name: 'y', dtype: 'float32', dims: [3, 5] }],
      initializers: { Wt: f32([5, 8], 1), gain: f32([1], 2), b_flat: f32([5], 3), shape: i64([1, 5]), ax: i64([0]) },
      opsets: { '': 17 },
    });
    // x_bias as a plain initializer (not a graph input), so the Add reading h and it is the only non-constant.
    proto.graph!.input = proto.graph!.input.filter((v) => v.name !== 'x_bias');
    proto.graph!.initializer.push(
      ...makeModel({ nodes: [], inputs: [], outputs: [], initializers: { x_bias: f32([1, 5], 9) } }).graph!.initializer,
    );
    const x = f32([3, 8], 4).data as Float32Array;
    const want = await run(proto, x);

    const model = modelFromProto(proto);
    // An interpreter without Unsqueeze: the node is left in place (then removed as dead).
    const full = defaultRegistry();
    const noUnsqueeze = new OpRegistry();
    for (const op of ['Transpose', 'Reshape', 'Cast', 'Mul', 'Add'])
      noUnsqueeze.register(op, full.get(op) ?? expect.fail(`the interpreter lacks ${op}`));
    const r = foldConstants(model.graph, 17, noUnsqueeze);
    expect(r.folded).toEqual(['tr', 'rs', 'mul', 'cast', 'id']);
    expect(r.skipped).toEqual(['dead']);
    expect(model.graph.nodes.map((n) => n.name)).toEqual(['mm', 'add_bias', 'add_runtime']);
    expect([...model.graph.initializers.keys()].sort()).toEqual(['Wg', 'b_id', 'x_bias']); // dead Unsqueeze and unread inputs gone
    const got = await run(modelToProto(model), x);
    for (let i = 0; i < want.length; i++)
      expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[i]!)));
  });
});

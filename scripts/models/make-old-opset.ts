// Writes the old-opset fixtures of test/fixtures/opset/: one small digits-shaped conv net
// (input [N, 1, 8, 8], 10 softmax outputs) at ai.onnx opset 9 and at opset 11, each with its
// weights as initializers and, as exporters such as paddle2onnx write them, in Constant nodes.
// The graph uses the ops whose signature changed between these opsets and the ones quantization
// needs (Clip 11, Slice 10, Squeeze/Unsqueeze 13, Softmax 13), each in the form of its opset, so
// a pass that raises the opset must rewrite them. The weights are seeded random, not trained: the
// fixtures test that quantized outputs load and run in ONNX Runtime, not their accuracy.
//
// Run from the repository root: `npx tsx scripts/models/make-old-opset.ts`.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeAttribute } from '../../src/io/onnx/attribute.js';
import { makeModel, type NodeSpec } from '../../src/io/onnx/build.js';
import { encodeModel } from '../../src/io/onnx/proto.js';
import { mulberry32 } from '../../src/quant/prng.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const OUT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'opset');

export type WeightPlacement = 'initializers' | 'constants';

/** Seeded weights: uniform in ±sqrt(3 / fanIn) (unit variance through each layer). */
function weights(): Record<string, Tensor> {
  const rand = mulberry32(2024);
  const uniform = (dims: number[], fanIn: number): Tensor => {
    const n = dims.reduce((a, b) => a * b, 1);
    const bound = Math.sqrt(3 / fanIn);
    return { dtype: 'float32', dims, data: Float32Array.from({ length: n }, () => (2 * rand() - 1) * bound) };
  };
  const positive = (n: number, lo: number, hi: number): Tensor => ({ dtype: 'float32', dims: [n], data: Float32Array.from({ length: n }, () => lo + (hi - lo) * rand()) });
  return {
    conv_w: uniform([8, 1, 3, 3], 9),
    conv_b: uniform([8], 9),
    bn_scale: positive(8, 0.5, 1.5),
    bn_bias: uniform([8], 3),
    bn_mean: uniform([8], 3),
    bn_var: positive(8, 0.5, 2),
    fc1_w: uniform([96, 32], 96),
    fc1_b: uniform([32], 96),
    // Gemm(transB = 1): [out, in], as torch's Linear exports it.
    fc2_w: uniform([10, 32], 32),
    fc2_b: uniform([10], 32),
  };
}

export function oldOpsetNet(opset: 9 | 11, placement: WeightPlacement): Uint8Array {
  const w = weights();
  const ints = (v: number[]): Tensor => ({ dtype: 'int64', dims: [v.length], data: BigInt64Array.from(v, BigInt) });
  const scalar = (v: number): Tensor => ({ dtype: 'float32', dims: [], data: Float32Array.of(v) });
  // Opset 9 spells Clip's bounds and Slice's ranges as attributes; 10/11 made them inputs.
  const clip: NodeSpec = opset >= 11
    ? { opType: 'Clip', name: 'clip', inputs: ['bn_out', 'clip_min', 'clip_max'], outputs: ['clip_out'] }
    : { opType: 'Clip', name: 'clip', inputs: ['bn_out'], outputs: ['clip_out'], attributes: { min: makeAttribute('min', 0, 'float'), max: makeAttribute('max', 6, 'float') } };
  const slice: NodeSpec = opset >= 10
    ? { opType: 'Slice', name: 'slice', inputs: ['flat', 'slice_starts', 'slice_ends', 'slice_axes'], outputs: ['sliced'] }
    : { opType: 'Slice', name: 'slice', inputs: ['flat'], outputs: ['sliced'], attributes: { starts: [0], ends: [96], axes: [1] } };
  const constants: Record<string, Tensor> = opset >= 11
    ? { clip_min: scalar(0), clip_max: scalar(6), slice_starts: ints([0]), slice_ends: ints([96]), slice_axes: ints([1]) }
    : {};
  const tensors = { ...w, ...constants };
  const nodes: NodeSpec[] = [
    { opType: 'Conv', name: 'conv', inputs: ['x', 'conv_w', 'conv_b'], outputs: ['conv_out'], attributes: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
    { opType: 'BatchNormalization', name: 'bn', inputs: ['conv_out', 'bn_scale', 'bn_bias', 'bn_mean', 'bn_var'], outputs: ['bn_out'], attributes: { epsilon: makeAttribute('epsilon', 1e-5, 'float') } },
    clip,
    { opType: 'MaxPool', name: 'pool', inputs: ['clip_out'], outputs: ['pool_out'], attributes: { kernel_shape: [2, 2], strides: [2, 2] } },
    { opType: 'Flatten', name: 'flatten', inputs: ['pool_out'], outputs: ['flat'], attributes: { axis: 1 } },
    slice,
    { opType: 'MatMul', name: 'fc1', inputs: ['sliced', 'fc1_w'], outputs: ['fc1_mm'] },
    { opType: 'Add', name: 'fc1_add', inputs: ['fc1_mm', 'fc1_b'], outputs: ['fc1_out'] },
    { opType: 'Relu', name: 'relu', inputs: ['fc1_out'], outputs: ['hidden'] },
    // A round trip through rank 3 with the axes attribute (an input from opset 13).
    { opType: 'Unsqueeze', name: 'unsqueeze', inputs: ['hidden'], outputs: ['hidden3'], attributes: { axes: [1] } },
    { opType: 'Squeeze', name: 'squeeze', inputs: ['hidden3'], outputs: ['hidden2'], attributes: { axes: [1] } },
    { opType: 'Gemm', name: 'fc2', inputs: ['hidden2', 'fc2_w', 'fc2_b'], outputs: ['logits'], attributes: { transB: 1 } },
    { opType: 'Softmax', name: 'softmax', inputs: ['logits'], outputs: ['probs'], attributes: { axis: 1 } },
  ];
  const constantNodes: NodeSpec[] = placement === 'constants'
    ? Object.entries(tensors).map(([name, t]) => ({ opType: 'Constant', name: `${name}_const`, inputs: [], outputs: [name], attributes: { value: t } }))
    : [];
  return encodeModel(makeModel({
    nodes: [...constantNodes, ...nodes],
    inputs: [{ name: 'x', dtype: 'float32', dims: ['N', 1, 8, 8] }],
    outputs: [{ name: 'probs', dtype: 'float32', dims: ['N', 10] }],
    initializers: placement === 'initializers' ? tensors : {},
    opsets: { '': opset },
    // IR 4 is what exporters of the opset-9 era wrote (ONNX 1.3); IR 6 goes with opset 11.
    irVersion: opset === 9 ? 4 : 6,
    graphName: `digits-opset${opset}-${placement}`,
  }));
}

export const OLD_OPSET_FIXTURES = [9, 11].flatMap((opset) => (['initializers', 'constants'] as const).map((placement) => ({
  opset: opset as 9 | 11, placement, file: `net-opset${opset}-${placement}.onnx`,
})));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  mkdirSync(OUT, { recursive: true });
  for (const f of OLD_OPSET_FIXTURES) {
    const bytes = oldOpsetNet(f.opset, f.placement);
    writeFileSync(join(OUT, f.file), bytes);
    console.log(`wrote ${join('test/fixtures/opset', f.file)} (${bytes.length} bytes)`);
  }
}

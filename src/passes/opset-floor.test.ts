import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { modelFromProto } from '../graph/from-onnx.js';
import { makeModel, type NodeSpec } from '../io/onnx/build.js';
import { makeAttribute } from '../io/onnx/attribute.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import type { Tensor } from '../tensor/tensor.js';
import { requiredOpset, settleOpset } from './opset-floor.js';
import { modelToProto } from '../graph/to-onnx.js';

/*
 * The table is held to ONNX Runtime itself: each node form loads and runs at the opset
 * requiredOpset names, and ONNX Runtime refuses it one opset lower.
 */

const s8 = (dims: number[], v: number[]): Tensor => ({ dtype: 'int8', dims, data: Int8Array.from(v) });
const f32 = (dims: number[], v: number[]): Tensor => ({ dtype: 'float32', dims, data: Float32Array.from(v) });

interface Case {
  /** What requiredOpset names (the first node at the highest opset). */
  readonly what: string;
  readonly title?: string;
  readonly opset: number;
  readonly nodes: NodeSpec[];
  readonly initializers?: Record<string, Tensor>;
}

const CASES: Case[] = [
  {
    what: 'DynamicQuantizeLinear',
    opset: 11,
    nodes: [
      { opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['q', 's', 'z'] },
      { opType: 'DequantizeLinear', inputs: ['q', 's', 'z'], outputs: ['y'] },
    ],
  },
  { what: 'Round', opset: 11, nodes: [{ opType: 'Round', inputs: ['x'], outputs: ['y'] }] },
  {
    what: 'QuantizeLinear',
    title: 'QuantizeLinear + MatMulInteger',
    opset: 10,
    nodes: [
      { opType: 'QuantizeLinear', inputs: ['x', 'sx', 'zx'], outputs: ['xq'] },
      { opType: 'MatMulInteger', inputs: ['xq', 'w'], outputs: ['y32'] },
      { opType: 'Cast', inputs: ['y32'], outputs: ['y'], attributes: { to: 1 } },
    ],
    initializers: {
      sx: f32([], [0.1]),
      zx: { dtype: 'uint8', dims: [], data: Uint8Array.of(128) },
      w: s8([3, 2], [1, -2, 3, -4, 5, -6]),
    },
  },
  {
    what: 'DequantizeLinear',
    title: 'per-tensor DequantizeLinear',
    opset: 10,
    nodes: [
      { opType: 'DequantizeLinear', inputs: ['w', 's'], outputs: ['wf'] },
      { opType: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'] },
    ],
    initializers: { w: s8([3, 2], [1, -2, 3, -4, 5, -6]), s: f32([], [0.5]) },
  },
  {
    what: 'per-axis DequantizeLinear',
    opset: 13,
    nodes: [
      { opType: 'DequantizeLinear', inputs: ['w', 's'], outputs: ['wf'], attributes: { axis: 1 } },
      { opType: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'] },
    ],
    initializers: { w: s8([3, 2], [1, -2, 3, -4, 5, -6]), s: f32([2], [0.5, 0.25]) },
  },
  {
    what: 'float8e4m3fn DequantizeLinear',
    opset: 19,
    nodes: [
      { opType: 'DequantizeLinear', inputs: ['w', 's'], outputs: ['wf'] },
      { opType: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'] },
    ],
    initializers: {
      w: { dtype: 'float8e4m3fn', dims: [3, 2], data: Uint8Array.of(0x38, 0x40, 0xb8, 0x30, 0x00, 0x44) },
      s: f32([], [0.5]),
    },
  },
  {
    what: 'blocked DequantizeLinear',
    opset: 21,
    nodes: [
      { opType: 'DequantizeLinear', inputs: ['w', 's'], outputs: ['wf'], attributes: { axis: 0, block_size: 2 } },
      { opType: 'MatMul', inputs: ['x', 'wf'], outputs: ['y'] },
    ],
    initializers: { w: s8([4, 2], [1, -2, 3, -4, 5, -6, 7, -8]), s: f32([2, 2], [0.5, 0.25, 1, 2]) },
  },
  {
    what: 'Cast to bfloat16',
    opset: 13,
    nodes: [
      { opType: 'Cast', inputs: ['x'], outputs: ['b'], attributes: { to: 16 } },
      { opType: 'Cast', inputs: ['b'], outputs: ['y'], attributes: { to: 1 } },
    ],
  },
];

/** Rows of the weight the case multiplies x by (x is [2, k]). */
const widthOf = (c: Case): number => c.initializers?.w?.dims[0] ?? 3;

function build(c: Case, opset: number): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: c.nodes,
      inputs: [{ name: 'x', dtype: 'float32', dims: [2, widthOf(c)] }],
      outputs: [{ name: 'y', dtype: 'float32' }],
      initializers: c.initializers ?? {},
      opsets: { '': opset },
    }),
  );
}

async function loadAndRun(bytes: Uint8Array, xDims: number[], x: Float32Array): Promise<void> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    await s.run({ x: new ort.Tensor('float32', x, xDims) });
  } finally {
    await s.release();
  }
}

describe('requiredOpset: the first opset ONNX Runtime accepts each form at', () => {
  for (const c of CASES) {
    it(`${c.title ?? c.what}: opset ${c.opset}, refused at ${c.opset - 1}`, async () => {
      const k = widthOf(c);
      const x = Float32Array.from({ length: 2 * k }, (_, i) => (i - k) * 0.3);
      const at = build(c, c.opset);
      expect(requiredOpset(modelFromProto(decodeModel(at)))).toEqual({ opset: c.opset, what: c.what });
      await loadAndRun(at, [2, k], x);
      await expect(loadAndRun(build(c, c.opset - 1), [2, k], x)).rejects.toThrow(
        /No Op registered|Unrecognized attribute|Type Error/,
      );
    });
  }
});

describe('settleOpset', () => {
  it('raises an opset-9 graph that gained DynamicQuantizeLinear to 11, rewriting Clip; ONNX Runtime loads the result', async () => {
    const bytes = encodeModel(
      makeModel({
        nodes: [
          {
            opType: 'Clip',
            inputs: ['x'],
            outputs: ['c'],
            name: 'clip',
            attributes: { min: makeAttribute('min', -1, 'float'), max: makeAttribute('max', 1, 'float') },
          },
          ...(CASES[0] as Case).nodes.map((n) => ({ ...n, inputs: n.inputs.map((i) => (i === 'x' ? 'c' : i)) })),
        ],
        inputs: [{ name: 'x', dtype: 'float32', dims: [2, 3] }],
        outputs: [{ name: 'y', dtype: 'float32' }],
        opsets: { '': 9 },
        irVersion: 4,
      }),
    );
    const model = modelFromProto(decodeModel(bytes));
    expect(settleOpset(model)).toEqual({ from: 9, to: 11, what: 'DynamicQuantizeLinear', rewritten: ['Clip'] });
    expect(settleOpset(model)).toBeUndefined();
    await loadAndRun(encodeModel(modelToProto(model)), [2, 3], Float32Array.of(-2, -0.5, 0, 0.25, 1, 3));
  });

  it('refuses by name when an op in the graph changes meaning with no rewrite (TopK k moved to an input at 10)', () => {
    const model = modelFromProto(
      decodeModel(
        encodeModel(
          makeModel({
            nodes: [
              { opType: 'TopK', inputs: ['x'], outputs: ['v', 'i'], attributes: { k: 1 } },
              ...(CASES[0] as Case).nodes.map((n) => ({ ...n, inputs: n.inputs.map((i) => (i === 'x' ? 'v' : i)) })),
            ],
            inputs: [{ name: 'x', dtype: 'float32', dims: [2, 3] }],
            outputs: [{ name: 'y', dtype: 'float32' }],
            opsets: { '': 9 },
          }),
        ),
      ),
    );
    expect(() => settleOpset(model)).toThrow(/QK_OPSET_TOO_OLD|DynamicQuantizeLinear needs ai.onnx opset 11.*TopK/);
  });
});

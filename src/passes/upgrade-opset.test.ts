import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel, type NodeSpec } from '../io/onnx/build.js';
import { encodeModel, type ModelProto } from '../io/onnx/proto.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import type { Tensor } from '../tensor/tensor.js';
import { upgradeOpset } from './upgrade-opset.js';

const f32 = (dims: number[], seed: number): Tensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.7 + seed) * 2),
});

async function run(proto: ModelProto, x: Tensor): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(encodeModel(proto));
  const out = await s.run({ x: new ort.Tensor('float32', x.data as Float32Array, [...x.dims]) });
  await s.release();
  return s.outputNames.map((n) => out[n]!.data as Float32Array);
}

function oldModel(opset: number, nodes: NodeSpec[], outputs: string[], inits: Record<string, Tensor> = {}) {
  return makeModel({
    nodes,
    inputs: [{ name: 'x', dtype: 'float32', dims: [1, 2, 4, 4] }],
    outputs: outputs.map((name) => ({ name, dtype: 'float32' as const })),
    initializers: inits,
    opsets: { '': opset },
    irVersion: opset <= 9 ? 4 : 6,
  });
}

async function expectSameAfterUpgrade(proto: ModelProto): Promise<string[]> {
  const x = f32([1, 2, 4, 4], 1);
  const before = await run(proto, x);
  const model = modelFromProto(proto);
  const r = upgradeOpset(model);
  const upgraded = modelToProto(model);
  upgraded.irVersion = 7n; // opset 13 needs IR 7 (the file writer picks this too)
  expect(upgraded.opsetImport.find((o) => o.domain === '')?.version).toBe(13n);
  expect(await run(upgraded, x)).toEqual(before);
  return r.rewritten;
}

describe('upgradeOpset to 13: ONNX Runtime outputs identical before and after', () => {
  it('opset 9: Unsqueeze/Squeeze/ReduceSum axes, Clip min/max, Pad, Slice, Dropout, Upsample, BatchNormalization', async () => {
    const rewritten = await expectSameAfterUpgrade(
      oldModel(
        9,
        [
          { opType: 'Unsqueeze', inputs: ['x'], outputs: ['u'], name: 'unsq', attributes: { axes: [0] } },
          { opType: 'Squeeze', inputs: ['u'], outputs: ['s'], name: 'sq', attributes: { axes: [0] } },
          { opType: 'Clip', inputs: ['s'], outputs: ['c'], name: 'clip', attributes: { min: -0.5, max: 1.25 } },
          {
            opType: 'Pad',
            inputs: ['c'],
            outputs: ['p'],
            name: 'pad',
            attributes: { pads: [0, 0, 1, 1, 0, 0, 1, 0], value: 0.5 },
          },
          {
            opType: 'Slice',
            inputs: ['p'],
            outputs: ['sl'],
            name: 'slice',
            attributes: { starts: [1, 0], ends: [5, 3], axes: [2, 3] },
          },
          {
            opType: 'ReduceSum',
            inputs: ['sl'],
            outputs: ['rs'],
            name: 'rsum',
            attributes: { axes: [3], keepdims: 1 },
          },
          { opType: 'Dropout', inputs: ['rs'], outputs: ['d'], name: 'drop', attributes: { ratio: 0.3 } },
          { opType: 'Upsample', inputs: ['d', 'scales'], outputs: ['up'], name: 'up', attributes: { mode: 'nearest' } },
          { opType: 'BatchNormalization', inputs: ['up', 'g', 'b', 'm', 'v'], outputs: ['y'], name: 'bn' },
        ],
        ['y'],
        {
          scales: { dtype: 'float32', dims: [4], data: Float32Array.of(1, 1, 2, 3) },
          g: f32([2], 2),
          b: f32([2], 3),
          m: f32([2], 4),
          v: { dtype: 'float32', dims: [2], data: Float32Array.of(1, 2) },
        },
      ),
    );
    expect(rewritten).toEqual(['unsq', 'sq', 'clip', 'pad', 'slice', 'rsum', 'drop', 'up']);
  });

  it('opset 11: Split split attribute, Unsqueeze axes', async () => {
    await expectSameAfterUpgrade(
      oldModel(
        11,
        [
          {
            opType: 'Split',
            inputs: ['x'],
            outputs: ['a', 'b'],
            name: 'split',
            attributes: { axis: 2, split: [1, 3] },
          },
          { opType: 'Unsqueeze', inputs: ['a'], outputs: ['ua'], name: 'unsq', attributes: { axes: [0] } },
          { opType: 'Clip', inputs: ['b', 'lo'], outputs: ['cb'], name: 'clip' },
        ],
        ['ua', 'cb'],
        { lo: { dtype: 'float32', dims: [], data: Float32Array.of(0) } },
      ),
    );
  });

  it('opset 11: Softmax over axis 1 of a 4-D input (coerced to 2-D before 13) is spelled out; over the last axis it is kept', async () => {
    const rewritten = await expectSameAfterUpgrade(
      oldModel(
        11,
        [
          { opType: 'Softmax', inputs: ['x'], outputs: ['s'], name: 'sm', attributes: { axis: 1 } },
          { opType: 'LogSoftmax', inputs: ['x'], outputs: ['l'], name: 'lsm', attributes: { axis: -1 } },
        ],
        ['s', 'l'],
      ),
    );
    expect(rewritten).toEqual(['sm']);
  });

  it('opset 14 to 19: Reduce* axes attribute becomes an input (changed at 18)', async () => {
    const proto = oldModel(
      14,
      [
        { opType: 'ReduceMean', inputs: ['x'], outputs: ['m'], name: 'mean', attributes: { axes: [-1], keepdims: 1 } },
        { opType: 'ReduceMax', inputs: ['x'], outputs: ['mx'], name: 'max', attributes: { axes: [1, 2], keepdims: 0 } },
        { opType: 'ReduceSumSquare', inputs: ['x'], outputs: ['ss'], name: 'ss' },
      ],
      ['m', 'mx', 'ss'],
    );
    const x = f32([1, 2, 4, 4], 3);
    const before = await run(proto, x);
    const model = modelFromProto(proto);
    expect(upgradeOpset(model, 19).rewritten).toEqual(['mean', 'max']);
    const upgraded = modelToProto(model);
    upgraded.irVersion = 9n;
    expect(await run(upgraded, x)).toEqual(before);
  });

  it('opset 9 to 11 rewrites only what changed by 11: Clip, Slice, Upsample (as Resize 10 spells it); Squeeze/Unsqueeze/Dropout keep their attributes', async () => {
    const proto = oldModel(
      9,
      [
        { opType: 'Unsqueeze', inputs: ['x'], outputs: ['u'], name: 'unsq', attributes: { axes: [0] } },
        { opType: 'Squeeze', inputs: ['u'], outputs: ['s'], name: 'sq', attributes: { axes: [0] } },
        { opType: 'Clip', inputs: ['s'], outputs: ['c'], name: 'clip', attributes: { min: -0.5, max: 1.25 } },
        {
          opType: 'Slice',
          inputs: ['c'],
          outputs: ['sl'],
          name: 'slice',
          attributes: { starts: [1, 0], ends: [4, 3], axes: [2, 3] },
        },
        { opType: 'Dropout', inputs: ['sl'], outputs: ['d'], name: 'drop', attributes: { ratio: 0.3 } },
        { opType: 'Upsample', inputs: ['d', 'scales'], outputs: ['y'], name: 'up', attributes: { mode: 'nearest' } },
      ],
      ['y'],
      { scales: { dtype: 'float32', dims: [4], data: Float32Array.of(1, 1, 2, 3) } },
    );
    const x = f32([1, 2, 4, 4], 5);
    const before = await run(proto, x);
    const model = modelFromProto(proto);
    expect(upgradeOpset(model, 11).rewritten).toEqual(['clip', 'slice', 'up']);
    const byName = new Map(model.graph.nodes.map((n) => [n.name, n]));
    for (const n of ['unsq', 'sq']) expect(byName.get(n)?.attributes.map((a) => a.name)).toEqual(['axes']);
    expect(byName.get('drop')?.attributes.map((a) => a.name)).toEqual(['ratio']);
    expect(byName.get('up')?.inputs.length).toBe(3); // Resize 11: X, roi, scales
    const upgraded = modelToProto(model);
    expect(upgraded.opsetImport.find((o) => o.domain === '')?.version).toBe(11n);
    upgraded.irVersion = 6n;
    expect(await run(upgraded, x)).toEqual(before);
    // Resize 10 is Upsample renamed: raising to 10 only is the same rewrite in its 10 form.
    const ten = modelFromProto(proto);
    upgradeOpset(ten, 10);
    expect(ten.graph.nodes.find((n) => n.name === 'up')?.inputs.length).toBe(2); // Resize 10: X, scales
    const ten10 = modelToProto(ten);
    ten10.irVersion = 5n;
    expect(await run(ten10, x)).toEqual(before);
  });

  it('an op without an upgrade is a named error', () => {
    const model = modelFromProto(
      oldModel(9, [{ opType: 'Scatter', inputs: ['x', 'i', 'x'], outputs: ['y'], name: 'sc' }], ['y']),
    );
    expect(() => upgradeOpset(model)).toThrow(/QK_OPSET_UPGRADE_UNSUPPORTED|'sc' \(Scatter\)/);
  });
});

import { describe, expect, it } from 'vitest';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { openSession } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { consumers, producers } from '../src/graph/topology.js';
import { makeModel } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { planStaticQuant } from '../src/passes/activation/plan.js';
import { sqnrDb } from '../src/quant/metrics.js';
import { normal } from '../src/quant/testdata.test-util.js';
import * as ort from 'onnxruntime-node';

const f32 = (dims: number[], seed: number, sigma = 0.5) => ({
  dtype: 'float32' as const,
  dims,
  data: normal(
    dims.reduce((a, b) => a * b, 1),
    seed,
    sigma,
  ),
});

/*
 *   x ─MatMul(W1)─ a ─Relu─ r ─┬─MatMul(W2)─ y2                       (fan-out: one shared Q/DQ)
 *                              ├─MatMul(W3)─ y3 ─Add(−1e4 mask)─ s ─┬─Softmax─ p ─MatMul(W4)─ y4
 *                              │                                    └─MatMul(W5)─ y5   (mask: float)
 *                              └─Reshape─ t ─MatMul(W6)─ y6         (chain: t takes r's scale)
 */
function ruleModel() {
  return modelFromProto(
    makeModel({
      opsets: { '': 17 },
      inputs: [{ name: 'x', dtype: 'float32', dims: ['n', 4] }],
      outputs: ['y2', 'y4', 'y5', 'y6'].map((name) => ({ name, dtype: 'float32' as const })),
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'W1'], outputs: ['a'], name: 'mm1' },
        { opType: 'Relu', inputs: ['a'], outputs: ['r'] },
        { opType: 'MatMul', inputs: ['r', 'W2'], outputs: ['y2'], name: 'mm2' },
        { opType: 'MatMul', inputs: ['r', 'W3'], outputs: ['y3'], name: 'mm3' },
        { opType: 'Add', inputs: ['y3', 'mask'], outputs: ['s'] },
        { opType: 'Softmax', inputs: ['s'], outputs: ['p'], attributes: { axis: -1 } },
        { opType: 'MatMul', inputs: ['p', 'W4'], outputs: ['y4'], name: 'mm4' },
        { opType: 'MatMul', inputs: ['s', 'W5'], outputs: ['y5'], name: 'mm5' },
        { opType: 'Reshape', inputs: ['r', 'shape'], outputs: ['t'] },
        { opType: 'MatMul', inputs: ['t', 'W6'], outputs: ['y6'], name: 'mm6' },
      ],
      initializers: {
        W1: f32([4, 4], 1),
        W2: f32([4, 4], 2),
        W3: f32([4, 4], 3),
        W4: f32([4, 4], 4),
        W5: f32([4, 4], 5),
        W6: f32([4, 4], 6),
        mask: { dtype: 'float32', dims: [4], data: Float32Array.of(0, 0, -1e4, -1e4) },
        shape: { dtype: 'int64', dims: [2], data: BigInt64Array.of(-1n, 4n) },
      },
    }),
  );
}

describe('static QDQ fusion rules', () => {
  it('plans: mask-like and softmax-input tensors stay float, chains take their source, fan-out shares', () => {
    const plan = planStaticQuant(ruleModel());
    expect(plan.sources.sort()).toEqual(['p', 'r', 'x']);
    expect(plan.tensors.get('t')?.source).toBe('r');
    const mm5 = plan.skipped.find((s) => s.node === 'mm5');
    expect(mm5?.reason).toMatch(/Softmax|mask/);
    expect(plan.sites.map((s) => s.node.name).sort()).toEqual(['mm1', 'mm2', 'mm3', 'mm4', 'mm6']);
  });

  it('writes one Q/DQ per tensor with shared scales, and ONNX Runtime runs it close to fp32', async () => {
    const fp32 = ruleModel();
    const fp32Bytes = encodeModel(modelToProto(fp32));
    const model = ruleModel();
    const x = f32([64, 4], 9, 1);
    await quantizeStatic(model, new Map([['x', { ...x, dims: [64, 4] }]]), { method: { kind: 'minmax' } });
    const g = model.graph;
    const cons = consumers(g);
    const prod = producers(g);
    const qOfR = (cons.get('r') ?? []).filter((n) => n.opType === 'QuantizeLinear');
    expect(qOfR.length).toBe(1);
    const qOfT = (cons.get('t') ?? []).filter((n) => n.opType === 'QuantizeLinear');
    expect(qOfT.length).toBe(1);
    expect(qOfT[0]?.inputs.slice(1)).toEqual(qOfR[0]?.inputs.slice(1)); // same scale / zero point
    const mm = (name: string) => g.nodes.find((n) => n.name === name);
    expect(mm('mm2')?.inputs[0]).toBe(mm('mm3')?.inputs[0]); // both read the one DQ output
    expect(prod.get(mm('mm5')?.inputs[0] as string)?.opType).toBe('Add'); // mask path untouched
    expect(prod.get(mm('mm5')?.inputs[1] as string)).toBeUndefined(); // and its weight stays fp32
    expect((cons.get('s') ?? []).some((n) => n.opType === 'QuantizeLinear')).toBe(false);

    const feeds = { x: new ort.Tensor('float32', x.data, [64, 4]) };
    const a = await (await openSession(fp32Bytes)).run(feeds);
    const b = await (await openSession(encodeModel(modelToProto(model)))).run(feeds);
    for (const o of ['y2', 'y4', 'y6']) {
      const s = sqnrDb(a[o]?.data as Float32Array, b[o]?.data as Float32Array);
      expect(s, o).toBeGreaterThan(25);
    }
  });

  it('--exclude and --keep-first-last leave those nodes in fp32', () => {
    const plan = planStaticQuant(ruleModel(), { exclude: ['mm2'], keepFirstLast: true });
    const names = plan.sites.map((s) => s.node.name);
    expect(names).not.toContain('mm2');
    expect(names).not.toContain('mm1');
    expect(plan.skipped.map((s) => s.reason).join(';')).toMatch(/exclude.*|first/);
  });
});

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { classifierAccuracy, type ClassifierResult } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import type { Model } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { consumers, producers } from '../src/graph/topology.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { quantizeDynamic } from '../src/passes/activation/dynamic.js';
import { foldBatchNorm } from '../src/passes/fold-batchnorm.js';

const bytes = readFileSync('models/cnn.onnx');
const testX = readNpy(readFileSync('models/cnn-test-x.npy'));
const testY = readNpy(readFileSync('models/cnn-test-y.npy'));
const calibX = readNpy(readFileSync('models/cnn-calib-x.npy'));

// ONNX Runtime 1.30's quantize_static on this model with BN folded, in its form that every x86 CPU
// runs exactly (reduce_range=True, 7-bit weights): mean |logit diff| 0.095 (issue 11; full range
// gave 0.072–0.076 with VNNI and 0.636 without). Our default pair-safe weights are exact on every
// CPU too (test/saturation.test.ts), so this holds on either kind of CI machine; ours must be closer.
const ORT_BEST_LOGIT_DIFF = 0.095;

/** QDQ around every Conv/Gemm (activation and weight through DequantizeLinear), none between Conv/Gemm and Relu. */
function assertQdqStructure(model: Model): void {
  const g = model.graph;
  const prod = producers(g);
  const cons = consumers(g);
  const compute = g.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm');
  expect(compute.length).toBe(4);
  for (const n of compute) {
    expect(prod.get(n.inputs[0] as string)?.opType, `${n.name} activation`).toBe('DequantizeLinear');
    const wdq = prod.get(n.inputs[1] as string);
    expect(wdq?.opType, `${n.name} weight`).toBe('DequantizeLinear');
    expect(g.initializers.get(wdq?.inputs[0] as string)?.dtype).toBe('int8');
    const bdq = prod.get(n.inputs[2] as string);
    expect(bdq?.opType, `${n.name} bias`).toBe('DequantizeLinear');
    expect(g.initializers.get(bdq?.inputs[0] as string)?.dtype).toBe('int32');
    for (const c of cons.get(n.outputs[0] as string) ?? []) {
      expect(c.opType, `after ${n.name}`).not.toBe('QuantizeLinear');
      if (c.opType === 'Relu') {
        const after = cons.get(c.outputs[0] as string) ?? [];
        expect(after.map((a) => a.opType)).toEqual(['QuantizeLinear']);
      }
    }
  }
  // Activations are u8 (asymmetric), and the Relu outputs' zero point is 0 (range clipped at 0).
  for (const q of g.nodes.filter((n) => n.opType === 'QuantizeLinear')) {
    const zp = g.initializers.get(q.inputs[2] as string);
    expect(zp?.dtype).toBe('uint8');
    if (prod.get(q.inputs[0] as string)?.opType === 'Relu') expect((zp?.load().data as Uint8Array)[0]).toBe(0);
  }
  expect(g.nodes.some((n) => n.opType === 'BatchNormalization')).toBe(false);
}

describe('digits CNN int8-static (BN folded, QDQ, run in onnxruntime-node)', () => {
  let fp32: ClassifierResult;
  beforeAll(async () => {
    fp32 = await classifierAccuracy(bytes, testX, testY);
  });

  for (const method of ['minmax', 'percentile', 'entropy', 'mse', 'moving-average']) {
    it(`${method}: drops ≤ 0.5 % accuracy, logits closer to fp32 than ORT's quantizer (< ${ORT_BEST_LOGIT_DIFF})`, async () => {
      const model = modelFromProto(decodeModel(bytes));
      const { report } = await quantizeStatic(model, new Map([['input', calibX]]), {
        method: parseCalibMethod(method),
        batchSize: 32,
      });
      assertQdqStructure(model);
      expect(report.quantizedNodes.length).toBe(4);
      const q = await classifierAccuracy(encodeModel(modelToProto(model)), testX, testY, fp32.logits);
      console.log(
        `cnn int8-static ${method}: accuracy ${(q.accuracy * 100).toFixed(2)} % (fp32 ${(fp32.accuracy * 100).toFixed(2)} %), mean |logit diff| ${q.meanAbsLogitDiff?.toFixed(4)} (ORT reduce_range 0.095)`,
      );
      expect(q.accuracy).toBeGreaterThanOrEqual(fp32.accuracy - 0.005);
      expect(q.meanAbsLogitDiff).toBeLessThan(ORT_BEST_LOGIT_DIFF);
    });
  }
});

describe('digits CNN: entropy is a real search, s8 activations, dynamic ConvInteger', () => {
  it("2048-bin entropy moves most calibrated ranges away from min-max (ORT's 128-bin default moves none)", async () => {
    const ranges = async (method: string) => {
      const r = await quantizeStatic(modelFromProto(decodeModel(bytes)), new Map([['input', calibX]]), {
        method: parseCalibMethod(method),
      });
      return new Map(r.report.tensors.filter((t) => t.source === t.name).map((t) => [t.name, t.hi]));
    };
    const mm = await ranges('minmax');
    const en = await ranges('entropy');
    const changed = [...mm].filter(([k, v]) => Math.abs((en.get(k) as number) - v) > 1e-6 * v);
    console.log(
      `entropy vs min-max: ${changed.length} of ${mm.size} ranges differ (${changed.map(([k]) => k).join(', ')})`,
    );
    expect(changed.length).toBeGreaterThanOrEqual(mm.size - 1);
  });

  it('s8 symmetric activations: accuracy drops ≤ 0.5 %', async () => {
    const model = modelFromProto(decodeModel(bytes));
    await quantizeStatic(model, new Map([['input', calibX]]), { method: { kind: 'minmax' }, activationType: 'int8' });
    const zps = model.graph.nodes
      .filter((n) => n.opType === 'QuantizeLinear')
      .map((n) => model.graph.initializers.get(n.inputs[2] as string)?.dtype);
    expect(new Set(zps)).toEqual(new Set(['int8']));
    const ref = await classifierAccuracy(bytes, testX, testY);
    const q = await classifierAccuracy(encodeModel(modelToProto(model)), testX, testY);
    expect(q.accuracy).toBeGreaterThanOrEqual(ref.accuracy - 0.005);
  });

  it('int8-dynamic with ConvInteger (conv: true): accuracy drops ≤ 0.5 %', async () => {
    const model = modelFromProto(decodeModel(bytes));
    foldBatchNorm(model);
    const r = quantizeDynamic(model, { conv: true });
    expect(r.quantizedNodes.map((n) => n.opType)).toEqual(['Conv', 'Conv', 'Gemm', 'Gemm']);
    expect(model.graph.nodes.filter((n) => n.opType === 'ConvInteger').length).toBe(2);
    const ref = await classifierAccuracy(bytes, testX, testY);
    const q = await classifierAccuracy(encodeModel(modelToProto(model)), testX, testY, ref.logits);
    console.log(
      `cnn int8-dynamic (ConvInteger): accuracy ${(q.accuracy * 100).toFixed(2)} %, mean |logit diff| ${q.meanAbsLogitDiff?.toFixed(4)}`,
    );
    expect(q.accuracy).toBeGreaterThanOrEqual(ref.accuracy - 0.005);
  });
});

import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import type { Model } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { removeDeadNodes } from '../src/graph/topology.js';
import { runModel } from '../src/interp/run.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { quantizeDynamic } from '../src/passes/activation/dynamic.js';
import type { WeightForm } from '../src/passes/activation/weight-form.js';
import { foldBatchNorm } from '../src/passes/fold-batchnorm.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { saturatedDots } from './helpers/saturation.js';

/*
 * Our default int8 outputs under the arithmetic of ONNX Runtime's u8×s8 kernels on x86 without
 * VNNI (pairs of products saturate in int16; src/interp/emulate.ts), whatever CPU runs the test.
 * The CNN runs in the reference interpreter with --emulate avx2-u8s8 (its emulated logits matched
 * ORT's AVX2 path under qemu exactly: 98.99 %, mean |Δlogit| 0.7714 for full range, minmax).
 * The LMs use float ops the interpreter lacks, so they are checked at every integer op instead:
 * ORT produces each op's activation codes, and the emulated dot products must equal the exact ones.
 */

const shipped = (name: string) => new URL(`../models/${name}`, import.meta.url).pathname;
const fixture = (name: string) => new URL(`fixtures/variants/${name}`, import.meta.url).pathname;
const npy = (path: string): Tensor => readNpy(readFileSync(path));
const load = (path: string): Model => modelFromProto(decodeModel(readFileSync(path), path), { label: path });

// 32 of the 497 test digits: the interpreter runs the CNN at ~6 ms a sample (two runs per test).
const SAMPLES = 32;
const cnnX = npy(shipped('cnn-test-x.npy'));
const per = cnnX.data.length / (cnnX.dims[0] as number);
const x: Tensor = {
  dtype: 'float32',
  dims: [SAMPLES, ...cnnX.dims.slice(1)],
  data: (cnnX.data as Float32Array).slice(0, SAMPLES * per),
};
const cnnCalib = new Map([['input', npy(shipped('cnn-calib-x.npy'))]]);

async function staticCnn(method: string, weightForm?: WeightForm) {
  const model = load(shipped('cnn.onnx'));
  await quantizeStatic(model, cnnCalib, { method: parseCalibMethod(method), weightForm });
  return modelToProto(model);
}

function logits(proto: ReturnType<typeof modelToProto>, emulate: boolean): Float32Array {
  const out = runModel(proto, new Map([['input', x]]), emulate ? { emulate: 'avx2-u8s8' } : {});
  return [...out.values()][0]?.data as Float32Array;
}

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs((a[i] as number) - (b[i] as number));
  return s / a.length;
}

describe('digits CNN int8-static under --emulate avx2-u8s8 (reference interpreter)', () => {
  for (const method of ['minmax', 'percentile', 'entropy', 'mse']) {
    it(`default (pair-safe) weights, ${method}: emulated logits equal native ones exactly`, async () => {
      const proto = await staticCnn(method);
      expect(logits(proto, true)).toEqual(logits(proto, false));
    });
  }
  it('full-range weights do saturate: emulated mean |Δlogit| against native > 0.2', async () => {
    const proto = await staticCnn('minmax', 'full');
    expect(meanAbsDiff(logits(proto, true), logits(proto, false))).toBeGreaterThan(0.2);
  });
});

const LMS = [
  { name: 'lm', model: shipped('lm.onnx'), data: shipped('lm-eval.npy'), calib: shipped('lm-calib.npy') },
  {
    name: 'lm-gemm-tied',
    model: fixture('lm-gemm-tied.onnx'),
    data: fixture('lm-gemm-tied-eval.npy'),
    calib: fixture('lm-gemm-tied-calib.npy'),
  },
  {
    name: 'lm-constants',
    model: fixture('lm-constants.onnx'),
    data: shipped('lm-eval.npy'),
    calib: shipped('lm-calib.npy'),
  },
];

/** The first 8 eval windows, the ids the model reads ([:, :T]). */
function lmFeeds(path: string): Record<string, ort.Tensor> {
  const w = npy(path);
  const [, len] = w.dims as [number, number];
  const T = len - 1;
  const rows = 8;
  const ids = new BigInt64Array(rows * T);
  for (let i = 0; i < rows; i++) ids.set((w.data as BigInt64Array).subarray(i * len, i * len + T), i * T);
  return { input_ids: new ort.Tensor('int64', ids, [rows, T]) };
}

function dynamic(path: string, weightForm?: WeightForm, perToken = false): Model {
  const model = load(path);
  foldBatchNorm(model);
  quantizeDynamic(model, { weightForm, perToken });
  removeDeadNodes(model.graph);
  return model;
}

describe('LMs: no integer op saturates under avx2-u8s8 with the default weights (ORT activation codes)', () => {
  for (const lm of LMS) {
    it(`${lm.name} int8-dynamic and int8-static: 0 saturated dot products`, async () => {
      const feeds = lmFeeds(lm.data);
      const dyn = await saturatedDots(dynamic(lm.model), feeds);
      expect(dyn.sites).toBeGreaterThan(0);
      expect(dyn.saturated).toBe(0);
      const model = load(lm.model);
      await quantizeStatic(model, new Map([['input_ids', npy(lm.calib)]]), { method: parseCalibMethod('minmax') });
      const r = await saturatedDots(model, feeds);
      expect(r.sites).toBeGreaterThan(0);
      expect(r.saturated).toBe(0);
    });
  }
  it('full-range lm-gemm-tied int8-dynamic does saturate (so the check can fail)', async () => {
    const r = await saturatedDots(
      dynamic(fixture('lm-gemm-tied.onnx'), 'full'),
      lmFeeds(fixture('lm-gemm-tied-eval.npy')),
    );
    expect(r.saturated).toBeGreaterThan(0);
  });
});

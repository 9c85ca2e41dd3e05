import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { windowsNll } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import type { Model } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { removeDeadNodes } from '../src/graph/topology.js';
import { runModel } from '../src/interp/run.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { quantizeDynamic } from '../src/passes/activation/dynamic.js';
import type { WeightForm } from '../src/passes/activation/weight-form.js';
import { foldBatchNorm } from '../src/passes/fold-batchnorm.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { QEMU, qemuAvailable, runOrtAvx2 } from './helpers/ort-avx2.js';

/*
 * ONNX Runtime itself on its AVX2 integer kernels (the CPU without VNNI, emulated by qemu-user
 * whatever this host is), against ONNX Runtime on this host. Our default int8 outputs must give
 * the same numbers on both; full-range weights must not (so these tests can fail), and the
 * interpreter's --emulate avx2-u8s8 must reproduce what the AVX2 kernels compute.
 */

const shipped = (name: string) => new URL(`../models/${name}`, import.meta.url).pathname;
const fixture = (name: string) => new URL(`fixtures/variants/${name}`, import.meta.url).pathname;
const npy = (path: string): Tensor => readNpy(readFileSync(path));
const load = (path: string): Model => modelFromProto(decodeModel(readFileSync(path), path), { label: path });

beforeAll(() => {
  if (!qemuAvailable()) throw new Error(`${QEMU} is missing: install Debian's 'qemu-user' (.ci/run does it)`);
});

async function runNative(bytes: Uint8Array, name: string, input: Tensor): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const type = input.dtype === 'int64' ? 'int64' : 'float32';
  const out = await session.run({
    [name]: new ort.Tensor(type, input.data as Float32Array | BigInt64Array, [...input.dims]),
  });
  return out[session.outputNames[0] as string]?.data as Float32Array;
}

function runAvx2(bytes: Uint8Array, name: string, input: Tensor): Float32Array {
  return Object.values(runOrtAvx2(bytes, { [name]: input }))[0]?.data as Float32Array;
}

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs((a[i] as number) - (b[i] as number));
  return s / a.length;
}

function accuracy(logits: Float32Array, labels: Tensor): number {
  const n = labels.dims[0] as number;
  const classes = logits.length / n;
  let right = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++)
      if ((logits[i * classes + c] as number) > (logits[i * classes + best] as number)) best = c;
    if (best === Number((labels.data as BigInt64Array)[i])) right++;
  }
  return right / n;
}

describe('digits CNN int8-static in ONNX Runtime: AVX2 kernels (qemu) against this host', () => {
  const x = npy(shipped('cnn-test-x.npy'));
  const y = npy(shipped('cnn-test-y.npy'));
  const fp32 = readFileSync(shipped('cnn.onnx'));

  async function staticCnn(weightForm?: WeightForm): Promise<Uint8Array> {
    const model = load(shipped('cnn.onnx'));
    await quantizeStatic(model, new Map([['input', npy(shipped('cnn-calib-x.npy'))]]), {
      method: parseCalibMethod('minmax'),
      weightForm,
    });
    return encodeModel(modelToProto(model));
  }

  it('default (pair-safe) weights: the same logits and accuracy on both', async () => {
    const bytes = await staticCnn();
    const native = await runNative(bytes, 'input', x);
    const avx2 = runAvx2(bytes, 'input', x);
    expect(meanAbsDiff(avx2, native)).toBeLessThan(1e-4);
    expect(accuracy(avx2, y)).toBe(accuracy(native, y));
    expect(meanAbsDiff(avx2, await runNative(fp32, 'input', x))).toBeLessThan(0.1);
  });

  it('full-range weights lose accuracy on AVX2, and --emulate avx2-u8s8 computes what ORT does there', async () => {
    const bytes = await staticCnn('full');
    const reference = await runNative(fp32, 'input', x);
    const avx2 = runAvx2(bytes, 'input', x);
    expect(meanAbsDiff(avx2, reference)).toBeGreaterThan(0.3);
    // The interpreter on the first 32 digits, emulating the AVX2 kernels: ORT's AVX2 logits.
    const samples = 32;
    const per = x.data.length / (x.dims[0] as number);
    const head: Tensor = {
      dtype: 'float32',
      dims: [samples, ...x.dims.slice(1)],
      data: (x.data as Float32Array).slice(0, samples * per),
    };
    const emulated = [...runModel(decodeModel(bytes), new Map([['input', head]]), { emulate: 'avx2-u8s8' }).values()][0]
      ?.data as Float32Array;
    const exact = [...runModel(decodeModel(bytes), new Map([['input', head]])).values()][0]?.data as Float32Array;
    const avx2Head = avx2.subarray(0, emulated.length);
    expect(meanAbsDiff(emulated, avx2Head)).toBeLessThan(1e-4);
    expect(meanAbsDiff(exact, avx2Head)).toBeGreaterThan(0.3);
  });
});

describe('LMs int8-dynamic in ONNX Runtime: AVX2 kernels (qemu) against this host', () => {
  function perplexity(logits: Float32Array, windows: Tensor, vocab: number): number {
    const [count, len] = windows.dims as [number, number];
    const r = windowsNll(logits, vocab, windows.data as BigInt64Array, len, 0, count);
    return Math.exp(r.nll / r.tokens);
  }
  function ids(windows: Tensor): Tensor {
    const [count, len] = windows.dims as [number, number];
    const out = new BigInt64Array(count * (len - 1));
    for (let i = 0; i < count; i++)
      out.set((windows.data as BigInt64Array).subarray(i * len, (i + 1) * len - 1), i * (len - 1));
    return { dtype: 'int64', dims: [count, len - 1], data: out };
  }
  function dynamicLm(path: string, weightForm?: WeightForm): Uint8Array {
    const model = load(path);
    foldBatchNorm(model);
    quantizeDynamic(model, { weightForm });
    removeDeadNodes(model.graph);
    return encodeModel(modelToProto(model));
  }
  const windows = npy(fixture('lm-gemm-tied-eval.npy'));
  const input = ids(windows);

  it('lm-gemm-tied, default weights: the same perplexity on both; full range: +3 % or more on AVX2 only', async () => {
    const safe = dynamicLm(fixture('lm-gemm-tied.onnx'));
    const nativeSafe = await runNative(safe, 'input_ids', input);
    const v = nativeSafe.length / input.data.length;
    const pSafeNative = perplexity(nativeSafe, windows, v);
    const pSafeAvx2 = perplexity(runAvx2(safe, 'input_ids', input), windows, v);
    expect(Math.abs(pSafeAvx2 / pSafeNative - 1)).toBeLessThan(1e-4);

    const full = dynamicLm(fixture('lm-gemm-tied.onnx'), 'full');
    const pFullAvx2 = perplexity(runAvx2(full, 'input_ids', input), windows, v);
    expect(pFullAvx2 / pSafeNative - 1).toBeGreaterThan(0.03);
  });
});

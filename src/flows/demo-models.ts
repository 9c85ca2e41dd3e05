import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { OptionError, QuantkitError } from '../errors.js';
import { readNpy } from '../io/npy/npy.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CalibrationData } from './calibrate.js';
import { classifierAccuracy, lmPerplexity } from './evaluate-node.js';

/*
 * The two models that ship in models/ (made by scripts/models/make_models.py) and how the demo
 * measures each: the LM by perplexity and bits per character on held-out windows, the CNN by
 * accuracy on held-out digits — both in ONNX Runtime through flows/evaluate.ts — plus latency.
 */

export type DemoModelName = 'lm' | 'cnn';
export const DEMO_MODEL_NAMES: readonly DemoModelName[] = ['lm', 'cnn'];

/** models/ of the package: src/flows/ and dist/flows/ are both two levels below the root. */
export const SHIPPED_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

export interface Quality {
  /** Perplexity (LM) or accuracy 0–1 (CNN). */
  readonly value: number;
  readonly bitsPerChar?: number;
  /** Classifier logits, to compare a quantized model with fp32 (mean |logit diff|). */
  readonly logits?: Float32Array;
}

export interface DemoModel {
  readonly name: DemoModelName;
  readonly file: string;
  readonly description: string;
  readonly quality: { readonly name: string; readonly higherIsBetter: boolean; readonly percent: boolean };
  /** Quality on the whole evaluation set. */
  evaluate(session: ort.InferenceSession): Promise<Quality>;
  /** A small batch for timing (the latency of one request, not of the whole evaluation set). */
  readonly latencyFeeds: Record<string, ort.Tensor>;
  /**
   * The shipped calibration set by graph input name (int8-static ranges, GPTQ's layer statistics): samples apart from the
   * evaluation set, so a calibrated range never sees the data it is scored on. Read when called.
   */
  calibrationData(): CalibrationData;
}

const MISSING_HINT = 'reinstall quantkit, or run scripts/models/make_models.py to make the shipped models';

function npy(dir: string, file: string): Tensor {
  const path = join(dir, file);
  if (!existsSync(path)) throw new QuantkitError('QK_DEMO_MODEL_MISSING', `${path} is missing`, MISSING_HINT);
  return readNpy(readFileSync(path), path);
}

function lmModel(dir: string): DemoModel {
  // lm-eval.npy: int64 [windows, context + 1]; the model reads the first `context` ids of each.
  const windows = npy(dir, 'lm-eval.npy');
  if (!(windows.data instanceof BigInt64Array) || windows.dims.length !== 2) {
    throw new QuantkitError(
      'QK_DEMO_BAD_DATA',
      `${join(dir, 'lm-eval.npy')} is ${windows.dtype}[${windows.dims.join(', ')}], expected int64 [windows, context + 1]`,
      MISSING_HINT,
    );
  }
  const [count, width] = windows.dims as [number, number];
  const context = width - 1;
  const n = Math.min(8, count);
  const latency = new BigInt64Array(n * context);
  for (let w = 0; w < n; w++) latency.set(windows.data.subarray(w * width, w * width + context), w * context);
  return {
    name: 'lm',
    file: join(dir, 'lm.onnx'),
    description: `Character-level transformer LM trained on Jane Austen's novels; quality = perplexity per character on ${count} held-out windows of ${context} characters (lower is better).`,
    quality: { name: 'perplexity', higherIsBetter: false, percent: false },
    async evaluate(session) {
      const r = await lmPerplexity(session, windows);
      return { value: r.perplexity, bitsPerChar: r.crossEntropy / Math.LN2 };
    },
    latencyFeeds: { input_ids: new ort.Tensor('int64', latency, [n, context]) },
    calibrationData() {
      // lm-calib.npy: int64 [samples, context], windows of the training text.
      const calib = npy(dir, 'lm-calib.npy');
      if (!(calib.data instanceof BigInt64Array) || calib.dims.length !== 2 || calib.dims[1] !== context) {
        throw new QuantkitError(
          'QK_DEMO_BAD_DATA',
          `${join(dir, 'lm-calib.npy')} is ${calib.dtype}[${calib.dims.join(', ')}], expected int64 [samples, ${context}]`,
          MISSING_HINT,
        );
      }
      return new Map([['input_ids', calib]]);
    },
  };
}

function cnnModel(dir: string): DemoModel {
  const x = npy(dir, 'cnn-test-x.npy');
  const y = npy(dir, 'cnn-test-y.npy');
  if (!(x.data instanceof Float32Array) || !(y.data instanceof BigInt64Array)) {
    throw new QuantkitError(
      'QK_DEMO_BAD_DATA',
      `${dir}: cnn-test-x.npy must be float32 and cnn-test-y.npy int64`,
      MISSING_HINT,
    );
  }
  const count = x.dims[0] as number;
  const per = x.data.length / count;
  const n = Math.min(32, count);
  return {
    name: 'cnn',
    file: join(dir, 'cnn.onnx'),
    description: `Small convolutional classifier of 8×8 handwritten digits (scikit-learn's digits set); quality = top-1 accuracy on ${count} held-out images (higher is better).`,
    quality: { name: 'accuracy', higherIsBetter: true, percent: true },
    async evaluate(session) {
      const r = await classifierAccuracy(session, x, y);
      return { value: r.accuracy, logits: r.logits };
    },
    latencyFeeds: { input: new ort.Tensor('float32', x.data.slice(0, n * per), [n, ...x.dims.slice(1)]) },
    calibrationData() {
      const calib = npy(dir, 'cnn-calib-x.npy');
      if (!(calib.data instanceof Float32Array) || calib.dims.slice(1).join() !== x.dims.slice(1).join()) {
        throw new QuantkitError(
          'QK_DEMO_BAD_DATA',
          `${join(dir, 'cnn-calib-x.npy')} is ${calib.dtype}[${calib.dims.join(', ')}], expected float32 [samples, ${x.dims.slice(1).join(', ')}]`,
          MISSING_HINT,
        );
      }
      return new Map([['input', calib]]);
    },
  };
}

export function loadDemoModel(name: DemoModelName, dir = SHIPPED_MODELS_DIR): DemoModel {
  const file = join(dir, `${name}.onnx`);
  if (!existsSync(file)) throw new QuantkitError('QK_DEMO_MODEL_MISSING', `${file} is missing`, MISSING_HINT);
  return name === 'lm' ? lmModel(dir) : cnnModel(dir);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** One intra-op thread, so timings do not depend on what else the machine does with its other cores. */
export async function openDemoSession(bytes: Uint8Array, label: string): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw new OptionError(
      'QK_ORT_LOAD_FAILED',
      `ONNX Runtime cannot load ${label}: ${e instanceof Error ? e.message : String(e)}`,
      'leave this scheme out with `schemes`',
      ['schemes'],
    );
  }
}

export interface PairTiming {
  /** Median milliseconds of one latency batch. */
  readonly baseMs: number;
  readonly otherMs: number;
}

/**
 * Times the latency batch on two sessions, alternating run by run after `warm` untimed runs of
 * each, so a slow spell of the machine hits both alike; medians of `timed` runs each.
 */
export async function timePair(
  base: ort.InferenceSession,
  other: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  warm: number,
  timed: number,
): Promise<PairTiming> {
  for (let i = 0; i < warm; i++) {
    await base.run(feeds);
    await other.run(feeds);
  }
  const b: number[] = [];
  const o: number[] = [];
  for (let i = 0; i < timed; i++) {
    let t0 = performance.now();
    await base.run(feeds);
    b.push(performance.now() - t0);
    t0 = performance.now();
    await other.run(feeds);
    o.push(performance.now() - t0);
  }
  return { baseMs: median(b), otherMs: median(o) };
}

export function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs((a[i] as number) - (b[i] as number));
  return a.length === 0 ? 0 : s / a.length;
}

import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { parseCalibMethod } from '../calib/method.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { readNpy } from '../io/npy/npy.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { FAST_MIN_CONV_REDUCTION } from '../passes/activation/plan.js';
import type { WeightOnlyOptions } from '../passes/weight-only/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { quantizeDynamicModel } from './calibrate.js';
import { quantizeStatic } from './calibrate-node.js';
import { quantizeModelBytes } from './quantize.js';

/*
 * ONNX Runtime latency of the models our quantizer writes, as ratios to their fp32 originals
 * measured side by side in one process: runs of the two sessions interleaved (so drift and other
 * load hit both alike), medians compared. One intra-op thread: the ratio is of kernels, not of
 * how cores are shared. `quantkit bench` and scripts/measure/model-latency.ts print these.
 */

export interface LatencyOptions {
  /** Timed runs of each session (after `warmup` untimed ones). */
  readonly rounds?: number | undefined;
  readonly warmup?: number | undefined;
  /** ORT intra-op threads (default 1). */
  readonly threads?: number | undefined;
}

export interface LatencyRatio {
  readonly baselineMs: number;
  readonly candidateMs: number;
  /** candidate / baseline: below 1 the candidate is faster. */
  readonly ratio: number;
  readonly rounds: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function ortFeeds(feeds: ReadonlyMap<string, Tensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of feeds) out[name] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims]);
  return out;
}

/** Median latency of `candidate` over `baseline` on the same feeds, runs interleaved. */
export async function ortLatencyRatio(
  baseline: Uint8Array,
  candidate: Uint8Array,
  feeds: ReadonlyMap<string, Tensor>,
  o: LatencyOptions = {},
): Promise<LatencyRatio> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: o.threads ?? 1,
    interOpNumThreads: 1,
  };
  const a = await ort.InferenceSession.create(baseline, options);
  const b = await ort.InferenceSession.create(candidate, options);
  try {
    const f = ortFeeds(feeds);
    for (let i = 0; i < (o.warmup ?? 10); i++) {
      await a.run(f);
      await b.run(f);
    }
    const rounds = o.rounds ?? 200;
    const ta: number[] = [];
    const tb: number[] = [];
    for (let i = 0; i < rounds; i++) {
      let t = performance.now();
      await a.run(f);
      ta.push(performance.now() - t);
      t = performance.now();
      await b.run(f);
      tb.push(performance.now() - t);
    }
    const baselineMs = median(ta);
    const candidateMs = median(tb);
    return { baselineMs, candidateMs, ratio: candidateMs / baselineMs, rounds };
  } finally {
    await a.release();
    await b.release();
  }
}

export interface ModelLatencyRow extends LatencyRatio {
  /** e.g. 'cnn int8-static'. */
  readonly model: string;
  /** What the feed is, e.g. 'batch 32', 'batch 1 × 64 tokens'. */
  readonly input: string;
  /** The ratio the goal sets for this row, if any (≤). */
  readonly goal?: number | undefined;
}

interface Case {
  readonly model: string;
  readonly fp32: Uint8Array;
  readonly make: () => Promise<Uint8Array> | Uint8Array;
  readonly inputs: readonly { label: string; feeds: Map<string, Tensor>; rounds: number; goal?: number | undefined }[];
}

const MODELS = new URL('../../models/', import.meta.url);

/**
 * The shipped models' quantized forms against fp32, at the batch sizes the goals name: the
 * int8-static CNN (default, and with `minConvReduction` keeping its 1-channel conv fp32) at batch
 * 1 and 32; the q4 LM (accuracy level 0 and 4) at one sequence of 64 tokens, one token, and 32
 * sequences; the int8-dynamic LM (MatMulInteger form, and DynamicQuantizeMatMul) at 1 and 32
 * sequences. `quick` cuts the rounds by 4.
 */
export async function measureShippedModelLatency(
  o: LatencyOptions & { quick?: boolean | undefined } = {},
): Promise<ModelLatencyRow[]> {
  const read = (f: string) => readFileSync(new URL(f, MODELS));
  const cnn = read('cnn.onnx');
  const lm = read('lm.onnx');
  const images = readNpy(read('cnn-test-x.npy'));
  const windows = readNpy(read('lm-calib.npy'));
  const cnnCalib = readNpy(read('cnn-calib-x.npy'));
  const cnnBatch = (n: number) =>
    new Map<string, Tensor>([
      ['input', { dtype: 'float32', dims: [n, 1, 8, 8], data: (images.data as Float32Array).slice(0, n * 64) }],
    ]);
  const lmBatch = (n: number, t: number) => {
    const ids = new BigInt64Array(n * t);
    for (let b = 0; b < n; b++)
      for (let k = 0; k < t; k++) ids[b * t + k] = (windows.data as BigInt64Array)[b * 64 + k] as bigint;
    return new Map<string, Tensor>([['input_ids', { dtype: 'int64', dims: [n, t], data: ids }]]);
  };
  const weightOnly = (opts: WeightOnlyOptions) => () => quantizeModelBytes(lm, opts).bytes;
  const staticCnn = (minConvReduction?: number) => async () => {
    const m = modelFromProto(decodeModel(cnn));
    await quantizeStatic(m, new Map([['input', cnnCalib]]), { method: parseCalibMethod('minmax'), minConvReduction });
    return encodeModel(modelToProto(m));
  };
  const dynamicLm = (form: 'integer' | 'contrib') => () => {
    const m = modelFromProto(decodeModel(lm));
    quantizeDynamicModel(m, { form });
    return encodeModel(modelToProto(m));
  };
  const cnnInputs = [
    { label: 'batch 1', feeds: cnnBatch(1), rounds: 1000, goal: 0.6 },
    { label: 'batch 32', feeds: cnnBatch(32), rounds: 300, goal: 0.6 },
  ];
  const lmInputs = (goal1: number | undefined) => [
    { label: 'batch 1 × 64 tokens', feeds: lmBatch(1, 64), rounds: 300, goal: goal1 },
    { label: 'batch 1 × 1 token', feeds: lmBatch(1, 1), rounds: 1000 },
    { label: 'batch 32 × 64 tokens', feeds: lmBatch(32, 64), rounds: 30 },
  ];
  const cases: Case[] = [
    { model: 'cnn int8-static', fp32: cnn, make: staticCnn(), inputs: cnnInputs },
    {
      model: `cnn int8-static, minConvReduction ${FAST_MIN_CONV_REDUCTION}`,
      fp32: cnn,
      make: staticCnn(FAST_MIN_CONV_REDUCTION),
      inputs: cnnInputs,
    },
    { model: 'lm q4', fp32: lm, make: weightOnly({ scheme: 'q4' }), inputs: lmInputs(0.6) },
    {
      model: 'lm q4, accuracy level 4',
      fp32: lm,
      make: weightOnly({ scheme: 'q4', accuracyLevel: 4 }),
      inputs: lmInputs(0.6),
    },
    { model: 'lm int8-dynamic', fp32: lm, make: dynamicLm('integer'), inputs: lmInputs(0.6) },
    { model: 'lm int8-dynamic, DynamicQuantizeMatMul', fp32: lm, make: dynamicLm('contrib'), inputs: lmInputs(0.6) },
  ];
  const rows: ModelLatencyRow[] = [];
  for (const c of cases) {
    const candidate = await c.make();
    for (const input of c.inputs) {
      const rounds = Math.max(10, Math.round((o.rounds ?? input.rounds) / (o.quick ? 4 : 1)));
      const r = await ortLatencyRatio(c.fp32, candidate, input.feeds, { ...o, rounds });
      rows.push({ model: c.model, input: input.label, goal: input.goal, ...r });
    }
  }
  return rows;
}

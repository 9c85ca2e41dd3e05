import { OptionError, QuantkitError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { encodeModel } from '../io/onnx/proto.js';
import type { IntRange } from '../quant/affine.js';
import { ChannelAbsMaxObserver } from '../calib/minmax.js';
import { needsHistogram, TensorCalibrator, type CalibMethod } from '../calib/method.js';
import type { Range } from '../calib/minmax.js';
import type { Tensor } from '../tensor/tensor.js';
import { removeDeadNodes } from '../graph/topology.js';
import { methodName } from '../calib/method.js';
import { quantizeDynamic, type DynamicOptions, type DynamicReport } from '../passes/activation/dynamic.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { opsetRaiseNote, raiseOpset, settleOpset } from '../passes/opset-floor.js';
import { planStaticQuant, type PlanOptions } from '../passes/activation/plan.js';
import { insertStaticQdq, type QdqOptions, type StaticReport } from '../passes/activation/qdq.js';
import { applySmoothQuant, findSmoothSites, type SmoothQuantReport } from '../passes/activation/smoothquant.js';
import type { OnnxRuntime, RuntimeSession, RuntimeTensor } from './runtime.js';

/**
 * Calibration: an augmented copy of the model that also outputs the tensors to observe runs in
 * ONNX Runtime batch by batch; observers keep running statistics or histograms, never the
 * activations, so memory is bounded by (batch activations + observer state) for any number of
 * samples. Methods with a histogram take two passes (min-max, then the histogram over that range).
 */

/** Calibration inputs by graph input name; axis 0 of each is the sample axis. */
export type CalibrationData = Map<string, Tensor>;

export interface CalibrationProgress {
  /** Called after every batch: samples done, samples per pass, pass number (1-based), passes. */
  (done: number, total: number, pass: number, passes: number): void;
}

export interface RunBatchesOptions {
  readonly batchSize?: number | undefined;
  readonly progress?: CalibrationProgress | undefined;
  readonly pass?: number;
  readonly passes?: number;
}

function sampleCount(data: CalibrationData): number {
  let n: number | undefined;
  for (const [name, t] of data) {
    const k = t.dims[0];
    if (k === undefined)
      throw new QuantkitError(
        'QK_CALIB_SCALAR',
        `calibration input '${name}' is a scalar`,
        'give arrays whose first axis is the sample axis',
      );
    if (n !== undefined && k !== n)
      throw new QuantkitError(
        'QK_CALIB_MISMATCH',
        `calibration inputs have ${n} and ${k} samples ('${name}')`,
        'give every input the same number of samples',
      );
    n = k;
  }
  if (n === undefined || n === 0)
    throw new OptionError(
      'QK_CALIB_EMPTY',
      'no calibration samples',
      'pass `calib` [name=]x.npy with at least one sample',
      ['calib'],
    );
  return n;
}

/** Samples [start, start + count) of a tensor as an ORT tensor (a view, no copy). */
function sliceSamples(runtime: OnnxRuntime, t: Tensor, start: number, count: number): RuntimeTensor {
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const dims = [count, ...t.dims.slice(1)];
  const d = t.data;
  if (d instanceof Float32Array) return runtime.tensor('float32', d.subarray(start * per, (start + count) * per), dims);
  if (d instanceof BigInt64Array) return runtime.tensor('int64', d.subarray(start * per, (start + count) * per), dims);
  if (d instanceof Int32Array) return runtime.tensor('int32', d.subarray(start * per, (start + count) * per), dims);
  throw new QuantkitError(
    'QK_CALIB_INPUT_TYPE',
    `calibration input of type ${t.dtype} is not supported`,
    'give float32, int64 or int32 arrays',
  );
}

/** Serializes a copy of `model` whose graph also outputs `extra` tensors. */
export function augmentedModelBytes(model: Model, extra: readonly string[]): Uint8Array {
  const have = new Set(model.graph.outputs.map((v) => v.name));
  const outputs = [
    ...model.graph.outputs,
    ...extra.filter((t) => !have.has(t)).map((name) => ({ name, dtype: 'float32' as const, dims: undefined })),
  ];
  return encodeModel(modelToProto({ ...model, graph: { ...model.graph, outputs } }));
}

/** A session on `bytes`; a model ONNX Runtime refuses is a user error with `hint` (by default: exclude the op). */
export async function createSession(runtime: OnnxRuntime, bytes: Uint8Array, hint?: string): Promise<RuntimeSession> {
  try {
    // logSeverityLevel 3: ORT's own error lines stay off stderr; its failures come back as exceptions.
    return await runtime.createSession(bytes, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 2,
      logSeverityLevel: 3,
    });
  } catch (e) {
    const message = `ONNX Runtime cannot load the model: ${e instanceof Error ? e.message : String(e)}`;
    throw hint === undefined
      ? new OptionError(
          'QK_ORT_LOAD_FAILED',
          message,
          'the graph uses an op or type this ONNX Runtime lacks; `exclude` the op',
          ['exclude'],
        )
      : new QuantkitError('QK_ORT_LOAD_FAILED', message, hint);
  }
}

/** The data cut into batches along axis 0, as ORT feeds (views, no copies). */
export function* feedBatches(
  runtime: OnnxRuntime,
  data: CalibrationData,
  batchSize = 16,
): Generator<{ feeds: Record<string, RuntimeTensor>; done: number; total: number }> {
  const n = sampleCount(data);
  const batch = Math.max(1, Math.floor(batchSize));
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    const feeds: Record<string, RuntimeTensor> = {};
    for (const [name, t] of data) feeds[name] = sliceSamples(runtime, t, start, count);
    yield { feeds, done: start + count, total: n };
  }
}

export function checkInputNames(session: RuntimeSession, data: CalibrationData): void {
  for (const name of data.keys()) {
    if (!session.inputNames.includes(name))
      throw new QuantkitError(
        'QK_UNKNOWN_INPUT',
        `the model has no input named '${name}'`,
        `its inputs are: ${session.inputNames.join(', ')}`,
      );
  }
}

/**
 * Runs the session over the data in batches and hands each batch's requested outputs to `visit`
 * (the arrays are only valid during the call).
 */
export async function runBatches(
  runtime: OnnxRuntime,
  session: RuntimeSession,
  data: CalibrationData,
  outputs: readonly string[],
  visit: (out: Record<string, RuntimeTensor>) => void,
  opts: RunBatchesOptions = {},
): Promise<void> {
  checkInputNames(session, data);
  for (const { feeds, done, total } of feedBatches(runtime, data, opts.batchSize ?? 16)) {
    const out = await session.run(feeds, [...outputs]);
    visit(out);
    for (const t of Object.values(out)) t.dispose();
    opts.progress?.(done, total, opts.pass ?? 1, opts.passes ?? 1);
  }
}

/** runBatches on a fresh session of the model `bytes`, released whether or not the run succeeds. */
export async function runModelBatches(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  outputs: readonly string[],
  visit: (out: Record<string, RuntimeTensor>) => void,
  opts: RunBatchesOptions = {},
): Promise<void> {
  const session = await createSession(runtime, bytes);
  try {
    await runBatches(runtime, session, data, outputs, visit, opts);
  } finally {
    await session.release();
  }
}

export interface CalibrateOptions {
  readonly method: CalibMethod;
  /** Activation integer range: u8 asymmetric [0, 255] by default. */
  readonly q?: IntRange & { symmetric: boolean };
  readonly batchSize?: number | undefined;
  readonly progress?: CalibrationProgress | undefined;
}

export interface CalibrationResult {
  readonly ranges: Map<string, Range>;
  readonly calibrators: Map<string, TensorCalibrator>;
  readonly samples: number;
}

/** Calibrated ranges of `tensors` (float activations of `model`) over the data. */
export async function calibrateRanges(
  runtime: OnnxRuntime,
  model: Model,
  tensors: readonly string[],
  data: CalibrationData,
  opts: CalibrateOptions,
): Promise<CalibrationResult> {
  const q = opts.q ?? { qmin: 0, qmax: 255, symmetric: false };
  const calibrators = new Map(tensors.map((t) => [t, new TensorCalibrator(t, opts.method, q)]));
  const samples = sampleCount(data);
  if (tensors.length === 0) return { ranges: new Map(), calibrators, samples };
  const session = await createSession(runtime, augmentedModelBytes(model, tensors));
  const passes = needsHistogram(opts.method) ? 2 : 1;
  try {
    const floatData = (out: Record<string, RuntimeTensor>, t: string): Float32Array => {
      const v = out[t];
      if (!v || !(v.data instanceof Float32Array))
        throw new QuantkitError(
          'QK_CALIB_NOT_FLOAT',
          `tensor '${t}' is not float32 at run time`,
          'only float activations can be calibrated',
        );
      return v.data;
    };
    for (let pass = 1; pass <= passes; pass++) {
      if (pass === 2) for (const c of calibrators.values()) c.startSecond();
      const observe = (out: Parameters<typeof floatData>[0]) => {
        for (const [t, c] of calibrators) {
          if (pass === 1) c.observeFirst(floatData(out, t));
          else c.observeSecond(floatData(out, t));
        }
      };
      await runBatches(runtime, session, data, tensors, observe, {
        batchSize: opts.batchSize,
        progress: opts.progress,
        pass,
        passes,
      });
    }
  } finally {
    await session.release();
  }
  const ranges = new Map<string, Range>();
  for (const [t, c] of calibrators) {
    // The data are finite (input-check.ts): a tensor never finite comes from the model itself.
    if (c.minmax.count === 0 && c.minmax.nonFinite > 0)
      throw new QuantkitError(
        'QK_CALIB_NON_FINITE',
        `activation '${t}' is NaN or ±Inf for every calibration sample`,
        'a weight or bias upstream of it is NaN/Inf or overflows float32; fix the model',
      );
    ranges.set(t, c.range());
  }
  return { ranges, calibrators, samples };
}

/** Per-channel (last axis) max |x| of each tensor: SmoothQuant's activation statistic. */
export async function calibrateChannelAbsMax(
  runtime: OnnxRuntime,
  model: Model,
  tensors: readonly string[],
  data: CalibrationData,
  opts: { batchSize?: number | undefined; progress?: CalibrationProgress | undefined } = {},
): Promise<Map<string, Float32Array>> {
  const result = new Map<string, Float32Array>();
  if (tensors.length === 0) return result;
  const observers = new Map(tensors.map((t) => [t, new ChannelAbsMaxObserver()]));
  await runModelBatches(
    runtime,
    augmentedModelBytes(model, tensors),
    data,
    tensors,
    (out) => {
      for (const [t, o] of observers) {
        const v = out[t];
        if (v && v.data instanceof Float32Array) o.observe(v.data, v.dims[v.dims.length - 1] ?? 1);
      }
    },
    { batchSize: opts.batchSize, progress: opts.progress },
  );
  for (const [t, o] of observers) if (o.absMax) result.set(t, o.absMax);
  return result;
}

export interface StaticQuantOptions extends PlanOptions, QdqOptions {
  readonly method: CalibMethod;
  readonly batchSize?: number | undefined;
  readonly progress?: CalibrationProgress | undefined;
  /** SmoothQuant migration strength α (0…1); undefined = off. */
  readonly smoothQuant?: number | undefined;
}

export interface StaticQuantResult {
  readonly model: Model;
  readonly report: StaticReport & { method: string; samples: number; smoothQuant: SmoothQuantReport | null };
}

/**
 * int8-static: BatchNorm folded first; SmoothQuant (optional) from per-channel statistics; the
 * tensors to quantize chosen by the fusion rules (passes/activation/plan.ts); their ranges
 * calibrated; Q/DQ written. Rewrites `model` in place.
 */
export async function quantizeStatic(
  runtime: OnnxRuntime,
  model: Model,
  data: CalibrationData,
  opts: StaticQuantOptions,
): Promise<StaticQuantResult> {
  // Raised first: the passes below write per-axis Q/DQ and read the graph in its opset-13 form.
  const opset = raiseOpset(model, { opset: 13, what: 'per-axis QuantizeLinear/DequantizeLinear' });
  const folded = foldBatchNorm(model);
  let sq: SmoothQuantReport | null = null;
  if (opts.smoothQuant !== undefined) {
    const sites = findSmoothSites(model, opts);
    const stats = await calibrateChannelAbsMax(
      runtime,
      model,
      sites.map((s) => s.activation),
      data,
      opts,
    );
    sq = applySmoothQuant(model, sites, stats, opts.smoothQuant);
  }
  const plan = planStaticQuant(model, opts);
  const q =
    opts.activationType === 'int8'
      ? { qmin: -128, qmax: 127, symmetric: true }
      : { qmin: 0, qmax: 255, symmetric: false };
  const calibrated = plan.sources.filter((s) => !plan.fixedRanges.has(s));
  const cal = await calibrateRanges(runtime, model, calibrated, data, {
    method: opts.method,
    q,
    batchSize: opts.batchSize,
    progress: opts.progress,
  });
  const ranges = new Map([...cal.ranges, ...plan.fixedRanges]);
  const report = insertStaticQdq(model, plan, ranges, opts);
  removeDeadNodes(model.graph);
  const raised = settleOpset(model);
  if (raised) report.notes.push(opsetRaiseNote(raised));
  if (folded > 0) report.notes.unshift(`${folded} BatchNormalization node(s) folded into the preceding Conv/Gemm`);
  if (opset) report.notes.unshift(opsetRaiseNote(opset));
  return { model, report: { ...report, method: methodName(opts.method), samples: cal.samples, smoothQuant: sq } };
}

/** int8-dynamic in memory: BatchNorm folded first, then the dynamic rewrite; dead values dropped. */
export function quantizeDynamicModel(model: Model, opts: DynamicOptions): DynamicReport {
  const folded = foldBatchNorm(model);
  const r = quantizeDynamic(model, opts);
  removeDeadNodes(model.graph);
  if (folded > 0) r.notes.unshift(`${folded} BatchNormalization node(s) folded into the preceding Conv/Gemm`);
  return r;
}

/** The static schemes: one QDQ form, 8-bit weights in int8 or 4/3-bit weights in int4 storage. */
export type StaticScheme = 'int8-static' | 'int4-static' | 'int3-static';

export type ActivationReport =
  ({ scheme: StaticScheme } & StaticQuantResult['report']) | ({ scheme: 'int8-dynamic' } & DynamicReport);

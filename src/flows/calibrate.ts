import { readFileSync, statSync } from 'node:fs';
import { SingleBar, Presets } from 'cli-progress';
import * as ort from 'onnxruntime-node';
import { QuantkitError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { encodeModel } from '../io/onnx/proto.js';
import type { IntRange } from '../quant/affine.js';
import { ChannelAbsMaxObserver } from '../calib/minmax.js';
import { needsHistogram, TensorCalibrator, type CalibMethod } from '../calib/method.js';
import type { Range } from '../calib/minmax.js';
import type { Tensor } from '../tensor/tensor.js';
import { removeDeadNodes } from '../graph/topology.js';
import { methodName, parseCalibMethod } from '../calib/method.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { readNpy } from '../io/npy/npy.js';
import { openOnnxFile } from '../node/model-file.js';
import { writeFileAtomic } from '../node/files.js';
import { quantizeDynamic, type DynamicReport } from '../passes/activation/dynamic.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { opsetRaiseNote, raiseOpset, settleOpset } from '../passes/opset-floor.js';
import type { Verification } from '../node/verify-model.js';
import { firstSamples, verifyOutput, type VerifyOption } from './verify-output.js';
import { planStaticQuant, type PlanOptions } from '../passes/activation/plan.js';
import { insertStaticQdq, type QdqOptions, type StaticReport } from '../passes/activation/qdq.js';
import type { Target } from '../passes/activation/weight-form.js';
import { applySmoothQuant, findSmoothSites, type SmoothQuantReport } from '../passes/activation/smoothquant.js';
import { checkedCalibration } from './input-check.js';
import { checkExcludes } from './exclude-check.js';
import { resolveNonFinite, type NonFinitePolicy } from '../passes/non-finite.js';

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
    if (k === undefined) throw new QuantkitError('QK_CALIB_SCALAR', `calibration input '${name}' is a scalar`, 'give arrays whose first axis is the sample axis');
    if (n !== undefined && k !== n) throw new QuantkitError('QK_CALIB_MISMATCH', `calibration inputs have ${n} and ${k} samples ('${name}')`, 'give every input the same number of samples');
    n = k;
  }
  if (n === undefined || n === 0) throw new QuantkitError('QK_CALIB_EMPTY', 'no calibration samples', 'pass --calib [name=]x.npy with at least one sample');
  return n;
}

/** Samples [start, start + count) of a tensor as an ORT tensor (a view, no copy). */
function sliceSamples(t: Tensor, start: number, count: number): ort.Tensor {
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const dims = [count, ...t.dims.slice(1)];
  const d = t.data;
  if (d instanceof Float32Array) return new ort.Tensor('float32', d.subarray(start * per, (start + count) * per), dims);
  if (d instanceof BigInt64Array) return new ort.Tensor('int64', d.subarray(start * per, (start + count) * per), dims);
  if (d instanceof Int32Array) return new ort.Tensor('int32', d.subarray(start * per, (start + count) * per), dims);
  throw new QuantkitError('QK_CALIB_INPUT_TYPE', `calibration input of type ${t.dtype} is not supported`, 'give float32, int64 or int32 arrays');
}

/** Serializes a copy of `model` whose graph also outputs `extra` tensors. */
export function augmentedModelBytes(model: Model, extra: readonly string[]): Uint8Array {
  const have = new Set(model.graph.outputs.map((v) => v.name));
  const outputs = [...model.graph.outputs, ...extra.filter((t) => !have.has(t)).map((name) => ({ name, dtype: 'float32' as const, dims: undefined }))];
  return encodeModel(modelToProto({ ...model, graph: { ...model.graph, outputs } }));
}

export async function createSession(bytes: Uint8Array, hint = 'the graph uses an op or type this ONNX Runtime lacks; --exclude the op'): Promise<ort.InferenceSession> {
  try {
    // logSeverityLevel 3: ORT's own error lines stay off stderr; its failures come back as exceptions.
    return await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 2, logSeverityLevel: 3 });
  } catch (e) {
    throw new QuantkitError('QK_ORT_LOAD_FAILED', `ONNX Runtime cannot load the model: ${e instanceof Error ? e.message : String(e)}`, hint);
  }
}

/** The data cut into batches along axis 0, as ORT feeds (views, no copies). */
export function* feedBatches(data: CalibrationData, batchSize = 16): Generator<{ feeds: Record<string, ort.Tensor>; done: number; total: number }> {
  const n = sampleCount(data);
  const batch = Math.max(1, Math.floor(batchSize));
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of data) feeds[name] = sliceSamples(t, start, count);
    yield { feeds, done: start + count, total: n };
  }
}

export function checkInputNames(session: ort.InferenceSession, data: CalibrationData): void {
  for (const name of data.keys()) {
    if (!session.inputNames.includes(name)) throw new QuantkitError('QK_UNKNOWN_INPUT', `the model has no input named '${name}'`, `its inputs are: ${session.inputNames.join(', ')}`);
  }
}

/**
 * Runs the session over the data in batches and hands each batch's requested outputs to `visit`
 * (the arrays are only valid during the call).
 */
export async function runBatches(session: ort.InferenceSession, data: CalibrationData, outputs: readonly string[], visit: (out: Record<string, ort.Tensor>) => void, opts: RunBatchesOptions = {}): Promise<void> {
  checkInputNames(session, data);
  for (const { feeds, done, total } of feedBatches(data, opts.batchSize ?? 16)) {
    const out = await session.run(feeds, [...outputs]);
    visit(out);
    for (const t of Object.values(out)) t.dispose();
    opts.progress?.(done, total, opts.pass ?? 1, opts.passes ?? 1);
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
export async function calibrateRanges(model: Model, tensors: readonly string[], data: CalibrationData, opts: CalibrateOptions): Promise<CalibrationResult> {
  const q = opts.q ?? { qmin: 0, qmax: 255, symmetric: false };
  const calibrators = new Map(tensors.map((t) => [t, new TensorCalibrator(t, opts.method, q)]));
  const samples = sampleCount(data);
  if (tensors.length === 0) return { ranges: new Map(), calibrators, samples };
  const session = await createSession(augmentedModelBytes(model, tensors));
  const passes = needsHistogram(opts.method) ? 2 : 1;
  try {
    const floatData = (out: Record<string, ort.Tensor>, t: string): Float32Array => {
      const v = out[t];
      if (!v || !(v.data instanceof Float32Array)) throw new QuantkitError('QK_CALIB_NOT_FLOAT', `tensor '${t}' is not float32 at run time`, 'only float activations can be calibrated');
      return v.data;
    };
    await runBatches(session, data, tensors, (out) => {
      for (const [t, c] of calibrators) c.observeFirst(floatData(out, t));
    }, { batchSize: opts.batchSize, progress: opts.progress, pass: 1, passes });
    if (passes === 2) {
      for (const c of calibrators.values()) c.startSecond();
      await runBatches(session, data, tensors, (out) => {
        for (const [t, c] of calibrators) c.observeSecond(floatData(out, t));
      }, { batchSize: opts.batchSize, progress: opts.progress, pass: 2, passes });
    }
  } finally {
    await session.release();
  }
  const ranges = new Map<string, Range>();
  for (const [t, c] of calibrators) {
    // The data are finite (input-check.ts): a tensor never finite comes from the model itself.
    if (c.minmax.count === 0 && c.minmax.nonFinite > 0) throw new QuantkitError('QK_CALIB_NON_FINITE', `activation '${t}' is NaN or ±Inf for every calibration sample`, 'a weight or bias upstream of it is NaN/Inf or overflows float32; fix the model');
    ranges.set(t, c.range());
  }
  return { ranges, calibrators, samples };
}

/** Per-channel (last axis) max |x| of each tensor: SmoothQuant's activation statistic. */
export async function calibrateChannelAbsMax(model: Model, tensors: readonly string[], data: CalibrationData, opts: { batchSize?: number | undefined; progress?: CalibrationProgress | undefined } = {}): Promise<Map<string, Float32Array>> {
  const result = new Map<string, Float32Array>();
  if (tensors.length === 0) return result;
  const observers = new Map(tensors.map((t) => [t, new ChannelAbsMaxObserver()]));
  const session = await createSession(augmentedModelBytes(model, tensors));
  try {
    await runBatches(session, data, tensors, (out) => {
      for (const [t, o] of observers) {
        const v = out[t];
        if (v && v.data instanceof Float32Array) o.observe(v.data, v.dims[v.dims.length - 1] ?? 1);
      }
    }, { batchSize: opts.batchSize, progress: opts.progress });
  } finally {
    await session.release();
  }
  for (const [t, o] of observers) if (o.absMax) result.set(t, o.absMax);
  return result;
}

/**
 * A cli-progress bar on stderr, shown when stderr is a TTY or when forced (--progress). Returns
 * the callback for the calibration functions and a stop function.
 */
export function progressBar(label: string, force = false): { progress: CalibrationProgress | undefined; stop: () => void } {
  if (!force && !process.stderr.isTTY) return { progress: undefined, stop: () => {} };
  const bar = new SingleBar({ format: `${label} pass {pass}/{passes} [{bar}] {value}/{total} samples`, stream: process.stderr, noTTYOutput: force, notTTYSchedule: 500 }, Presets.shades_classic);
  let started = false;
  let lastPass = 0;
  return {
    progress: (done, total, pass, passes) => {
      if (!started) { bar.start(total, 0, { pass, passes }); started = true; }
      if (pass !== lastPass) { bar.setTotal(total); lastPass = pass; }
      bar.update(done, { pass, passes });
    },
    stop: () => { if (started) bar.stop(); },
  };
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
export async function quantizeStatic(model: Model, data: CalibrationData, opts: StaticQuantOptions): Promise<StaticQuantResult> {
  // Raised first: the passes below write per-axis Q/DQ and read the graph in its opset-13 form.
  const opset = raiseOpset(model, { opset: 13, what: 'per-axis QuantizeLinear/DequantizeLinear' });
  const folded = foldBatchNorm(model);
  let sq: SmoothQuantReport | null = null;
  if (opts.smoothQuant !== undefined) {
    const sites = findSmoothSites(model, opts);
    const stats = await calibrateChannelAbsMax(model, sites.map((s) => s.activation), data, opts);
    sq = applySmoothQuant(model, sites, stats, opts.smoothQuant);
  }
  const plan = planStaticQuant(model, opts);
  const q = opts.activationType === 'int8' ? { qmin: -128, qmax: 127, symmetric: true } : { qmin: 0, qmax: 255, symmetric: false };
  const calibrated = plan.sources.filter((s) => !plan.fixedRanges.has(s));
  const cal = await calibrateRanges(model, calibrated, data, { method: opts.method, q, batchSize: opts.batchSize, progress: opts.progress });
  const ranges = new Map([...cal.ranges, ...plan.fixedRanges]);
  const report = insertStaticQdq(model, plan, ranges, opts);
  removeDeadNodes(model.graph);
  const raised = settleOpset(model);
  if (raised) report.notes.push(opsetRaiseNote(raised));
  if (folded > 0) report.notes.unshift(`${folded} BatchNormalization node(s) folded into the preceding Conv/Gemm`);
  if (opset) report.notes.unshift(opsetRaiseNote(opset));
  return { model, report: { ...report, method: methodName(opts.method), samples: cal.samples, smoothQuant: sq } };
}

// ---------------------------------------------------------------------------------------------
// The int8-dynamic / int8-static schemes of `quantkit quantize` (file to file).

export const ACTIVATION_SCHEMES = ['int8-dynamic', 'int8-static'] as const;
export type ActivationScheme = (typeof ACTIVATION_SCHEMES)[number];

export function isActivationScheme(s: string): s is ActivationScheme {
  return (ACTIVATION_SCHEMES as readonly string[]).includes(s);
}

export interface ActivationFileOptions extends VerifyOption {
  readonly scheme: ActivationScheme;
  /** `--calib [name=]x.npy`, as given (int8-static). */
  readonly calib?: readonly string[] | undefined;
  /** `--method` text: minmax | moving-average[:c] | percentile[:p] | entropy | mse. */
  readonly method?: string | undefined;
  readonly calibBatch?: number | undefined;
  /** `--smoothquant [alpha]`: true = 0.5. */
  readonly smoothQuant?: boolean | number | undefined;
  /** 'uint8' (default) or 'int8' symmetric activations (int8-static). */
  readonly activationType?: 'uint8' | 'int8' | undefined;
  /** int8-dynamic graph form, and per-token activation scales. */
  readonly dynamicForm?: 'integer' | 'contrib' | undefined;
  readonly perToken?: boolean | undefined;
  /** `--target`: the CPU the model runs on, which picks the weight form (passes/activation/weight-form.ts). */
  readonly target?: Target | undefined;
  readonly exclude?: readonly string[] | undefined;
  readonly keepFirstLast?: boolean | undefined;
  readonly force?: boolean | undefined;
  /** Show the calibration progress bar even when stderr is not a TTY. */
  readonly progress?: boolean | undefined;
  /** NaN/±Inf in the weights: refuse (default), clamp, or keep them unquantized (passes/non-finite.ts). */
  readonly nonFinite?: NonFinitePolicy | undefined;
}

export type ActivationReport =
  | ({ scheme: 'int8-static' } & StaticQuantResult['report'])
  | ({ scheme: 'int8-dynamic' } & DynamicReport);

export function readCalibFiles(bindings: readonly string[], inputNames: readonly string[]): CalibrationData {
  const data: CalibrationData = new Map();
  let positional = 0;
  for (const arg of bindings) {
    const eq = arg.indexOf('=');
    const named = eq > 0 && !arg.slice(0, eq).includes('/');
    const name = named ? arg.slice(0, eq) : inputNames[positional++];
    const path = named ? arg.slice(eq + 1) : arg;
    if (name === undefined) throw new QuantkitError('QK_TOO_MANY_INPUTS', `${bindings.length} --calib files for a model with ${inputNames.length} input(s) (${inputNames.join(', ')})`, 'drop the extra --calib');
    if (!inputNames.includes(name)) throw new QuantkitError('QK_UNKNOWN_INPUT', `the model has no input named '${name}' (--calib ${arg})`, `its inputs are: ${inputNames.join(', ')}`);
    if (!path.endsWith('.npy')) throw new QuantkitError('QK_INPUT_FORMAT', `--calib '${path}' is not a .npy file`, 'give calibration arrays as NumPy .npy, first axis = samples');
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new QuantkitError('QK_FILE_UNREADABLE', `cannot read '${path}' (${(e as NodeJS.ErrnoException).code ?? 'unknown'})`, 'check the path and its permissions');
    }
    data.set(name, readNpy(bytes, path));
  }
  return data;
}

/** Quantizes a model file with int8-dynamic or int8-static; writes the output atomically. */
export async function quantizeActivationFile(inPath: string, outPath: string, o: ActivationFileOptions): Promise<{ report: ActivationReport; inputFileBytes: number; outputFileBytes: number; verification: Verification }> {
  const file = openOnnxFile(inPath);
  let report: ActivationReport;
  let bytes: Uint8Array;
  let samples: Map<string, Tensor> | undefined;
  try {
    const model = modelFromProto(file.proto, { external: file.external, label: inPath });
    checkExcludes(model, o.exclude, false);
    const nonFinite = resolveNonFinite(model, o.nonFinite ?? 'error');
    o = { ...o, exclude: [...(o.exclude ?? []), ...nonFinite.exclude] };
    if (o.scheme === 'int8-dynamic') {
      if (o.calib?.length) throw new QuantkitError('QK_BAD_OPTION', '--calib is for int8-static; int8-dynamic finds activation scales at run time', 'drop --calib or use --scheme int8-static');
      const folded = foldBatchNorm(model);
      const r = quantizeDynamic(model, { exclude: o.exclude, keepFirstLast: o.keepFirstLast, form: o.dynamicForm, perToken: o.perToken, target: o.target });
      removeDeadNodes(model.graph);
      if (folded > 0) r.notes.unshift(`${folded} BatchNormalization node(s) folded into the preceding Conv/Gemm`);
      report = { scheme: 'int8-dynamic', ...r };
    } else {
      if (!o.calib?.length) throw new QuantkitError('QK_CALIB_MISSING', 'int8-static needs calibration data', 'pass --calib [name=]x.npy (a few hundred representative samples)');
      const calib = checkedCalibration(model, readCalibFiles(o.calib, model.graph.inputs.map((v) => v.name)), o.calibBatch);
      const data = calib.data;
      samples = firstSamples(data, model.graph.inputs);
      const alpha = o.smoothQuant === true ? 0.5 : o.smoothQuant === false ? undefined : o.smoothQuant;
      if (alpha !== undefined && !(alpha >= 0 && alpha <= 1)) throw new QuantkitError('QK_BAD_OPTION', `--smoothquant ${alpha} is outside [0, 1]`, 'use e.g. --smoothquant 0.5');
      const bar = progressBar('calibrating', o.progress ?? false);
      try {
        const r = await quantizeStatic(model, data, {
          method: parseCalibMethod(o.method ?? 'minmax'), batchSize: o.calibBatch, progress: bar.progress,
          smoothQuant: alpha, exclude: o.exclude, keepFirstLast: o.keepFirstLast, activationType: o.activationType, target: o.target,
        });
        report = { scheme: 'int8-static', ...r.report };
        report.notes.push(...calib.notes);
      } finally {
        bar.stop();
      }
    }
    report.notes.push(...nonFinite.notes);
    bytes = encodeModel(modelToProto(model));
  } finally {
    file.close();
  }
  await writeFileAtomic(outPath, [bytes], { force: o.force ?? false, inputs: [inPath] });
  const verification = await verifyOutput({ modelPath: outPath }, `quantize --scheme ${o.scheme}`, { verify: o.verify, samples });
  return { report, inputFileBytes: statSync(inPath).size, outputFileBytes: bytes.length, verification };
}

/** The terminal text of an activation-scheme report. */
export function formatActivationReport(r: ActivationReport): string {
  const out: string[] = [];
  if (r.scheme === 'int8-static') {
    out.push(`int8-static (${r.method}, ${r.samples} calibration samples)`);
    for (const n of r.quantizedNodes) out.push(`  quantized ${n.opType} ${n.node}${n.weight ? ` (weight ${n.weight}${n.bias ? ', int32 bias' : ''})` : ' (activation × activation)'}`);
    for (const t of r.tensors) out.push(`  activation ${t.name}: [${t.lo.toPrecision(4)}, ${t.hi.toPrecision(4)}] scale ${t.scale.toPrecision(4)} zero point ${t.zeroPoint}${t.source !== t.name ? ` (scale of ${t.source})` : ''}`);
    if (r.smoothQuant) for (const g of r.smoothQuant.groups) out.push(`  smoothquant α=${r.smoothQuant.alpha} ${g.activation}: max |x| ${g.maxAbsBefore.toPrecision(4)} → ${g.maxAbsAfter.toPrecision(4)}, 1/s folded into ${g.foldedInto}`);
  } else {
    out.push(`int8-dynamic (${r.form})`);
    for (const n of r.quantizedNodes) out.push(`  quantized ${n.opType} ${n.node} (weight ${n.weight})`);
  }
  for (const s of r.skipped) out.push(`  kept fp32 ${s.opType} ${s.node}: ${s.reason}`);
  out.push(`weights: ${r.weights.reason}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}

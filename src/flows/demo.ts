import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { SCHEMES, SCHEME_NAMES, type LayerReport, type SchemeName } from '../passes/weight-only/index.js';
import { DEFAULT_PERCENTILE, parseCalibMethod } from '../calib/method.js';
import { modelToProto } from '../graph/to-onnx.js';
import { removeDeadNodes } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { quantizeDynamic } from '../passes/activation/dynamic.js';
import { intAttr } from '../passes/activation/graph-util.js';
import { quantizeWeightPerChannel } from '../quant/int8-quant.js';
import { planStaticQuant } from '../passes/activation/plan.js';
import type { QuantizedTensorReport } from '../passes/activation/qdq.js';
import { findSmoothSites } from '../passes/activation/smoothquant.js';
import { sqnrDb } from '../quant/metrics.js';
import { calibrateRanges, quantizeStatic, type CalibrationData } from './calibrate.js';
import { ACTIVATION_SCHEMES, type ActivationScheme } from './schemes.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import { quantizeModelBytesGptq } from './gptq.js';
import { quantizeModelBytes } from './quantize.js';
import { trackTemp, untrackTemp } from '../node/temp-registry.js';
import {
  DEMO_MODEL_NAMES,
  loadDemoModel,
  meanAbsDiff,
  openDemoSession,
  SHIPPED_MODELS_DIR,
  timePair,
  type DemoModel,
  type DemoModelName,
} from './demo-models.js';
import {
  histogram,
  readersByTensor,
  rebinHistogram,
  thresholdSpread,
  weightGrids,
  type CalibrationPlot,
  type CalibrationThreshold,
  type LayerWeights,
  type ModelReport,
  type ReportData,
  type SchemeRow,
  type SeriesKey,
} from './report-data.js';
import { weightOnlySeries } from './report-series.js';

/*
 * `quantkit demo`: every scheme the scheme table has, on each shipped model, measured in ONNX
 * Runtime in one run — file size, quality and its change from fp32, weight SQNR, latency ratio.
 * Nothing in the table is typed in: change a scheme and its row changes.
 */

/** One row of the demo: a scheme with the options the demo sweeps. */
export type DemoVariant = WeightOnlyVariant | GptqVariant | DynamicVariant | StaticVariant;

interface VariantBase {
  /** Row label, e.g. 'q4 b32', 'q4-rtn b64', 'nf4 b64 +gptq', 'int8-static entropy', 'int8-static+sq mse'. */
  readonly label: string;
}
export interface WeightOnlyVariant extends VariantBase {
  readonly kind: 'weight-only';
  readonly scheme: SchemeName;
  readonly blockSize?: number;
  readonly rtn?: boolean;
  /** kmeans: one codebook per output channel. */
  readonly perChannel?: boolean;
}
/** A block-wise weight-only scheme with GPTQ rounding, calibrated on the model's shipped calibration set. */
export interface GptqVariant extends VariantBase {
  readonly kind: 'gptq';
  readonly scheme: SchemeName;
  readonly blockSize: number;
}
export interface DynamicVariant extends VariantBase {
  readonly kind: 'int8-dynamic';
  readonly scheme: 'int8-dynamic';
}
export interface StaticVariant extends VariantBase {
  readonly kind: 'int8-static';
  readonly scheme: 'int8-static';
  /** `--method` text. */
  readonly method: string;
  /** SmoothQuant α; such a row runs only on a model with MatMul activations to smooth. */
  readonly smoothQuant?: number;
}

/** Block sizes swept for every block-wise scheme (MatMulNBits / MatMulBnb4). */
export const DEMO_BLOCK_SIZES = [32, 64, 128] as const;
/** Round-to-nearest q4 (ONNX Runtime's own quantizer) at this block size, the "int4 absmax" baseline NF4 is held against. */
const RTN_BLOCK_SIZE = 64;
/**
 * The range methods compared for int8-static. calib/method.ts has no list of its methods to
 * enumerate; moving-average is left out on purpose: over a fixed calibration set it is min-max
 * with lag (it exists for streams and QAT), so it would add a row and no insight.
 */
export const DEMO_CALIB_METHODS = ['minmax', 'percentile', 'entropy', 'mse'] as const;
/** `quantize --smoothquant` without a value uses 0.5 (Xiao et al.'s default). */
export const DEMO_SMOOTHQUANT_ALPHA = 0.5;

/** The rows each activation scheme gives; keyed by the scheme list so a new scheme must add its entry. */
const ACTIVATION_VARIANTS: Readonly<Record<ActivationScheme, () => DemoVariant[]>> = {
  'int8-dynamic': () => [{ kind: 'int8-dynamic', label: 'int8-dynamic', scheme: 'int8-dynamic' }],
  'int8-static': () => [
    ...DEMO_CALIB_METHODS.map((method): StaticVariant => ({
      kind: 'int8-static',
      label: `int8-static ${method}`,
      scheme: 'int8-static',
      method,
    })),
    ...DEMO_CALIB_METHODS.map((method): StaticVariant => ({
      kind: 'int8-static',
      label: `int8-static+sq ${method}`,
      scheme: 'int8-static',
      method,
      smoothQuant: DEMO_SMOOTHQUANT_ALPHA,
    })),
  ],
  // Low-bit static weights are QAT's PTQ baseline (README, quantization-aware training), not demo rows.
  'int4-static': () => [],
  'int3-static': () => [],
};

/**
 * The rows, enumerated from the scheme tables: a weight-only scheme without blocks gives one row;
 * a block-wise one a row per block size; a symmetric integer 4-bit scheme also its plain
 * round-to-nearest form; a 4-bit scheme GPTQ covers (symmetric q4, nf4, fp4) also its GPTQ form at
 * its default block size (q4-asym and q8-block are left out to keep the run short: GPTQ costs about
 * a second a row on the LM, and the issue's budgets name these three); then each activation scheme its rows (int8-static: one per range method,
 * without and with SmoothQuant). `only` filters by scheme name or label.
 */
export function demoVariants(only?: readonly string[]): DemoVariant[] {
  const out: DemoVariant[] = [];
  for (const name of SCHEME_NAMES) {
    const s = SCHEMES[name];
    // kmeans per channel: per tensor costs the CNN 1.4 points of accuracy, past the demo's budget.
    if (s.kind === 'kmeans') {
      out.push({ kind: 'weight-only', label: `${name} per-channel`, scheme: name, perChannel: true });
      continue;
    }
    if (!('defaultBlockSize' in s)) {
      out.push({ kind: 'weight-only', label: name, scheme: name });
      continue;
    }
    for (const b of DEMO_BLOCK_SIZES)
      out.push({ kind: 'weight-only', label: `${name} b${b}`, scheme: name, blockSize: b });
    // q3 (3-bit levels in 4-bit storage) and q4-k are left out of the extra rows too.
    const plainQ4 = s.kind === 'nbits' && s.symmetric && s.bits === 4 && !('codeBits' in s) && !('superBlock' in s);
    if (plainQ4)
      out.push({
        kind: 'weight-only',
        label: `${name}-rtn b${RTN_BLOCK_SIZE}`,
        scheme: name,
        blockSize: RTN_BLOCK_SIZE,
        rtn: true,
      });
    if (plainQ4 || s.kind === 'bnb4')
      out.push({
        kind: 'gptq',
        label: `${name} b${s.defaultBlockSize} +gptq`,
        scheme: name,
        blockSize: s.defaultBlockSize,
      });
  }
  for (const a of ACTIVATION_SCHEMES) out.push(...ACTIVATION_VARIANTS[a]());
  if (!only || only.length === 0) return out;
  const wanted = new Set(only);
  const picked = out.filter((v) => wanted.has(v.scheme) || wanted.has(v.label));
  const unknown = only.filter((w) => !out.some((v) => v.scheme === w || v.label === w));
  if (unknown.length > 0) {
    throw new QuantkitError(
      'QK_UNKNOWN_SCHEME',
      `unknown scheme ${unknown.map((u) => `'${u}'`).join(', ')} for the demo`,
      `use scheme names (${[...SCHEME_NAMES, ...ACTIVATION_SCHEMES].join(', ')}) or row labels such as 'q4 b64' or 'int8-static entropy'`,
    );
  }
  return picked;
}

/** The variants a model can run: SmoothQuant rows need MatMul activations to smooth (the CNN has none). */
export function variantsForModel(variants: readonly DemoVariant[], hasSmoothSites: boolean): DemoVariant[] {
  return variants.filter((v) => hasSmoothSites || v.kind !== 'int8-static' || v.smoothQuant === undefined);
}

export interface DemoProgress {
  /** A model starts; `steps` rows follow (fp32 included). */
  start(model: string, steps: number): void;
  /** A row is done. */
  step(label: string): void;
  stop(): void;
}

export interface DemoOptions {
  readonly models?: readonly DemoModelName[];
  /** Scheme names or row labels; all when absent. */
  readonly schemes?: readonly string[];
  /** Keep the quantized files here (created if missing); otherwise a temp folder removed at the end. */
  readonly outDir?: string;
  readonly modelsDir?: string;
  readonly progress?: DemoProgress;
  /** Untimed and timed runs of the latency batch per row (default 3 and 15). */
  readonly warmRuns?: number;
  readonly timedRuns?: number;
  /** Weight and activation histogram bins in the report (default 80). */
  readonly histogramBins?: number;
  /** Activation tensors per model whose calibration ranges the report plots (default 3). */
  readonly calibrationPlots?: number;
}

export interface DemoRow extends SchemeRow {
  /** Where the quantized model was written ('' for fp32, which is the shipped file). */
  readonly file: string;
  readonly latencyMs: number;
}

export interface DemoModelResult extends ModelReport {
  readonly rows: readonly DemoRow[];
}

export interface DemoResult {
  readonly models: readonly DemoModelResult[];
  /** The folder the quantized files were written to, when kept. */
  readonly outDir: string | undefined;
  readonly seconds: number;
}

interface Weights {
  readonly name: string;
  readonly dims: readonly number[];
  readonly values: Float32Array;
  readonly energy: number;
  /** Output-channel axis when a Conv/Gemm/MatMul reads it as its weight (int8 per-channel scales). */
  readonly channelAxis: number | undefined;
  /** The nodes that read it (the report labels layers by them). */
  readonly readers: readonly string[];
}

/**
 * The fp32 weights the schemes quantize: after BatchNormalization folding, as quantizeModel does;
 * and whether the model has MatMul activations SmoothQuant can smooth.
 */
function readWeights(model: DemoModel): { weights: Map<string, Weights>; hasSmoothSites: boolean } {
  const m = modelFromProto(decodeModel(readFileSync(model.file), model.file), { label: model.file });
  foldBatchNorm(m);
  // The axes passes/activation gives its s8 per-channel weights: Conv 0, Gemm by transB, MatMul last.
  const axes = new Map<string, number>();
  for (const n of m.graph.nodes) {
    const w = n.inputs[1];
    if (w === undefined || n.domain !== '') continue;
    if (n.opType === 'Conv') axes.set(w, 0);
    else if (n.opType === 'Gemm') axes.set(w, intAttr(n, 'transB', 0) === 1 ? 0 : 1);
    else if (n.opType === 'MatMul') axes.set(w, -1);
  }
  const weights = new Map<string, Weights>();
  const readers = readersByTensor(m.graph.nodes);
  for (const init of m.graph.initializers.values()) {
    if (init.dtype !== 'float32' || init.dims.length < 2) continue;
    const values = init.load().data as Float32Array;
    let energy = 0;
    for (let i = 0; i < values.length; i++) energy += (values[i] as number) * (values[i] as number);
    const axis = axes.get(init.name);
    weights.set(init.name, {
      name: init.name,
      dims: init.dims,
      values,
      energy,
      channelAxis: axis === -1 ? init.dims.length - 1 : axis,
      readers: readers.get(init.name) ?? [],
    });
  }
  return { weights, hasSmoothSites: findSmoothSites(m).some((s) => s.matmuls.some((n) => n.opType === 'MatMul')) };
}

/**
 * SQNR of a weight stored as the activation schemes store it (s8 per channel, [-127, 127],
 * scale max|w|/127: quant/int8-quant.ts quantizeWeightPerChannel), dequantized as DequantizeLinear does.
 */
function int8ChannelSqnrDb(w: Weights): number | null {
  if (w.channelAxis === undefined) return null;
  const { codes, scales } = quantizeWeightPerChannel(w.values, w.dims, w.channelAxis, w.name);
  let inner = 1;
  for (let d = w.channelAxis + 1; d < w.dims.length; d++) inner *= w.dims[d] as number;
  const channels = w.dims[w.channelAxis] as number;
  const back = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++)
    back[i] = (codes[i] as number) * (scales[Math.floor(i / inner) % channels] as number);
  return sqnrDb(w.values, back);
}

/**
 * SQNR of all quantized weights together, from each layer's SQNR and signal energy:
 * noise_i = signal_i · 10^(−SQNR_i/10), total = 10·log10(Σ signal / Σ noise). Null when no weight
 * changed; Infinity when every change was exact.
 */
export function combinedSqnrDb(layers: readonly { signal: number; sqnrDb: number | null }[]): number | null {
  let signal = 0;
  let noise = 0;
  let any = false;
  for (const l of layers) {
    if (l.sqnrDb === null) continue;
    any = true;
    signal += l.signal;
    noise += l.sqnrDb === Infinity ? 0 : l.signal * 10 ** (-l.sqnrDb / 10);
  }
  if (!any) return null;
  return noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
}

/**
 * Weights proper: tensors a MatMul, Gemm, Conv or Gather reads. fp16 also converts constants such
 * as an attention mask of −1e4 (exact in fp16, and with an energy that would swamp every weight's).
 */
export function isWeightLayer(l: Pick<LayerReport, 'opTypes'>): boolean {
  return l.opTypes.some((op) => WEIGHT_OPS.has(op));
}
const WEIGHT_OPS = new Set(['MatMul', 'Gemm', 'Conv', 'Gather']);

function fileLabel(label: string): string {
  return label.replace(/[^A-Za-z0-9_.-]+/g, '-');
}

interface QuantizedVariant {
  readonly bytes: Uint8Array;
  readonly weightSqnrDb: number | null;
  readonly layerSqnrDb: Record<string, number | null>;
  /** int8-static: the range each activation tensor was given, and the method's full name (percentile:99.99). */
  readonly ranges?: readonly QuantizedTensorReport[];
  readonly method?: string;
  readonly series?: SeriesKey;
  readonly weightSqnrNote?: string;
}

/** The footnote a SmoothQuant row's empty weight SQNR cell carries. */
export const SMOOTHQUANT_SQNR_NOTE =
  "not measured for +sq rows: SmoothQuant multiplies each weight row by its smoothing factor before quantizing (and divides the activation by it), so the stored weights are not the original ones and an SQNR against them would measure the rescaling, not the format; the format is the int8-static rows' s8 per-channel one";

/**
 * Weight SQNR of an activation scheme's s8 per-channel weights. Only the combined number: layer by
 * layer it equals the int8 weight-only row (the same weights, passes/weight-only/index.ts), so
 * repeating it in the per-layer bars would only crowd them.
 */
function activationWeightSqnr(
  weightNames: readonly (string | null)[],
  weights: Map<string, Weights>,
): { weightSqnrDb: number | null; layerSqnrDb: Record<string, number | null> } {
  const layers: { signal: number; sqnrDb: number | null }[] = [];
  for (const name of new Set(weightNames)) {
    const w = name === null ? undefined : weights.get(name);
    if (w) layers.push({ signal: w.energy, sqnrDb: int8ChannelSqnrDb(w) });
  }
  return { weightSqnrDb: combinedSqnrDb(layers), layerSqnrDb: {} };
}

async function quantizeVariant(
  v: DemoVariant,
  source: Uint8Array,
  label: string,
  weights: Map<string, Weights>,
  calibration: () => CalibrationData,
): Promise<QuantizedVariant> {
  if (v.kind === 'weight-only' || v.kind === 'gptq') {
    // GPTQ's layer statistics come from the shipped calibration set, as int8-static's ranges do.
    const { bytes, report } =
      v.kind === 'gptq'
        ? await quantizeModelBytesGptq(source, { scheme: v.scheme, blockSize: v.blockSize }, calibration(), {}, label)
        : quantizeModelBytes(
            source,
            { scheme: v.scheme, blockSize: v.blockSize, rtn: v.rtn, perChannel: v.perChannel },
            label,
          );
    const layerSqnrDb: Record<string, number | null> = {};
    for (const l of report.layers) if (l.sqnrDb !== null && isWeightLayer(l)) layerSqnrDb[l.weight] = l.sqnrDb;
    const weightSqnrDb = combinedSqnrDb(
      report.layers
        .filter(isWeightLayer)
        .map((l) => ({ signal: weights.get(l.weight)?.energy ?? 0, sqnrDb: l.sqnrDb })),
    );
    return {
      bytes,
      weightSqnrDb,
      layerSqnrDb,
      series: weightOnlySeries(v.scheme, {
        blockSize: v.blockSize,
        rtn: v.kind === 'weight-only' && v.rtn,
        gptq: v.kind === 'gptq',
      }),
    };
  }
  const model = modelFromProto(decodeModel(source, label), { label });
  if (v.kind === 'int8-dynamic') {
    // As `quantize --scheme int8-dynamic` does (flows/activation-file.ts), in memory.
    foldBatchNorm(model);
    const r = quantizeDynamic(model);
    removeDeadNodes(model.graph);
    return {
      bytes: encodeModel(modelToProto(model)),
      ...activationWeightSqnr(
        r.quantizedNodes.map((n) => n.weight),
        weights,
      ),
    };
  }
  const r = await quantizeStatic(nodeRuntime, model, calibration(), {
    method: parseCalibMethod(v.method),
    smoothQuant: v.smoothQuant,
  });
  // SmoothQuant scales the weights before quantizing them, so their SQNR against the original
  // weights measures the smoothing, not the format: those rows show none.
  const sqnr =
    v.smoothQuant === undefined
      ? activationWeightSqnr(
          r.report.quantizedNodes.map((n) => n.weight),
          weights,
        )
      : { weightSqnrDb: null, layerSqnrDb: {}, weightSqnrNote: SMOOTHQUANT_SQNR_NOTE };
  return { bytes: encodeModel(modelToProto(model)), ...sqnr, ranges: r.report.tensors, method: r.report.method };
}

/**
 * The calibration plots: every calibrated activation of the int8-static plan observed once more
 * on the calibration set (a min-max pass, then a fine histogram over that range), with the range
 * each method's row used; the `count` tensors whose ranges differ most between methods are kept.
 */
async function calibrationPlots(
  source: Uint8Array,
  label: string,
  data: CalibrationData,
  chosen: ReadonlyMap<string, readonly QuantizedTensorReport[]>,
  count: number,
  bins: number,
): Promise<CalibrationPlot[]> {
  if (count <= 0) return [];
  // The same graph quantizeStatic calibrates: BatchNorm folded, the plan's calibrated sources.
  const model = modelFromProto(decodeModel(source, label), { label });
  foldBatchNorm(model);
  const plan = planStaticQuant(model);
  const tensors = plan.sources.filter((t) => !plan.fixedRanges.has(t));
  const cal = await calibrateRanges(nodeRuntime, model, tensors, data, {
    method: { kind: 'percentile', percentile: DEFAULT_PERCENTILE },
  });
  const candidates: { plot: CalibrationPlot; spread: number }[] = [];
  for (const t of tensors) {
    const c = cal.calibrators.get(t);
    const h = c?.histogram();
    if (!c || !h) continue;
    const observed = c.minmax.range();
    const thresholds: CalibrationThreshold[] = [];
    for (const [method, ranges] of chosen) {
      const r = ranges.find((x) => x.name === t && x.source === t);
      if (r) thresholds.push({ method, lo: r.lo, hi: r.hi });
    }
    if (thresholds.length === 0 || !(observed.lo <= observed.hi)) continue;
    // 'abs' histograms hold |x|; the observer picks them only when no value is negative.
    const plot = {
      tensor: t,
      histogram: rebinHistogram(h.counts, h.lo, h.width, observed.lo, observed.hi, bins),
      thresholds,
    };
    candidates.push({ plot, spread: thresholdSpread(thresholds, observed.lo, observed.hi) });
  }
  // Stable: equal spreads keep execution order.
  return candidates
    .sort((x, y) => y.spread - x.spread)
    .slice(0, count)
    .map((c) => c.plot);
}

async function demoOneModel(
  name: DemoModelName,
  allVariants: readonly DemoVariant[],
  opts: DemoOptions,
  outDir: string,
): Promise<DemoModelResult> {
  const model = loadDemoModel(name, opts.modelsDir ?? SHIPPED_MODELS_DIR);
  const source = new Uint8Array(readFileSync(model.file));
  const { weights, hasSmoothSites } = readWeights(model);
  const variants = variantsForModel(allVariants, hasSmoothSites);
  let calib: CalibrationData | undefined;
  const calibrationData = (): CalibrationData => (calib ??= model.calibrationData());
  opts.progress?.start(name, variants.length + 1);
  const warm = opts.warmRuns ?? 3;
  const timed = opts.timedRuns ?? 15;
  // The fp32 session stays open: each row's latency is timed against it, run for run.
  const baseSession = await openDemoSession(source, model.file);
  const rows: DemoRow[] = [];
  const quantizedLayers = new Set<string>();
  /** Method name → the ranges its int8-static row (without SmoothQuant) used. */
  const chosenRanges = new Map<string, readonly QuantizedTensorReport[]>();
  try {
    const base = await model.evaluate(baseSession);
    const baseTiming = await timePair(baseSession, baseSession, model.latencyFeeds, warm, timed);
    opts.progress?.step('fp32');
    const q0 = base.value;
    rows.push({
      scheme: 'fp32',
      file: '',
      bytes: source.length,
      ratio: 1,
      quality: q0,
      qualityChange: 0,
      ...(base.bitsPerChar === undefined ? {} : { bitsPerChar: base.bitsPerChar }),
      ...(base.logits ? { meanAbsLogitDiff: 0 } : {}),
      weightSqnrDb: null,
      layerSqnrDb: {},
      latencyRatio: 1,
      latencyMs: baseTiming.baseMs,
    });
    for (const v of variants) {
      const { bytes, weightSqnrDb, layerSqnrDb, ranges, method, series, weightSqnrNote } = await quantizeVariant(
        v,
        source,
        model.file,
        weights,
        calibrationData,
      );
      for (const l of Object.keys(layerSqnrDb)) quantizedLayers.add(l);
      if (ranges && method && v.kind === 'int8-static' && v.smoothQuant === undefined) chosenRanges.set(method, ranges);
      const file = join(outDir, `${name}.${fileLabel(v.label)}.onnx`);
      writeFileSync(file, bytes);
      const session = await openDemoSession(bytes, file);
      let q: Awaited<ReturnType<DemoModel['evaluate']>>;
      let t: Awaited<ReturnType<typeof timePair>>;
      try {
        q = await model.evaluate(session);
        t = await timePair(baseSession, session, model.latencyFeeds, warm, timed);
      } finally {
        await session.release();
      }
      rows.push({
        scheme: v.label,
        ...(series ? { series } : {}),
        file,
        bytes: bytes.length,
        ratio: source.length / bytes.length,
        quality: q.value,
        qualityChange: (q.value - q0) / q0,
        ...(q.bitsPerChar === undefined ? {} : { bitsPerChar: q.bitsPerChar }),
        ...(q.logits && base.logits ? { meanAbsLogitDiff: meanAbsDiff(q.logits, base.logits) } : {}),
        weightSqnrDb,
        ...(weightSqnrNote ? { weightSqnrNote } : {}),
        layerSqnrDb,
        latencyRatio: t.otherMs / t.baseMs,
        latencyMs: t.otherMs,
      });
      opts.progress?.step(v.label);
    }
  } finally {
    await baseSession.release();
  }

  const bins = opts.histogramBins ?? 80;
  const layers: LayerWeights[] = [...weights.values()]
    .filter((w) => quantizedLayers.has(w.name))
    .map((w) => ({
      name: w.name,
      readers: w.readers,
      dims: w.dims,
      histogram: histogram(w.values, bins),
      grids: weightGrids(w.values),
    }));
  const calibration =
    chosenRanges.size === 0
      ? []
      : await calibrationPlots(source, model.file, calibrationData(), chosenRanges, opts.calibrationPlots ?? 3, bins);
  return { name: model.name, description: model.description, quality: model.quality, rows, layers, calibration };
}

/** Runs the demo; quantized files go to opts.outDir, or to a temp folder removed before returning. */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const variants = demoVariants(opts.schemes);
  const names = opts.models ?? DEMO_MODEL_NAMES;
  let outDir: string;
  if (opts.outDir) {
    mkdirSync(opts.outDir, { recursive: true });
    outDir = opts.outDir;
  } else {
    outDir = mkdtempSync(join(tmpdir(), 'quantkit-demo-'));
    trackTemp(outDir); // Ctrl-C mid-demo removes it too
  }
  try {
    const models: DemoModelResult[] = [];
    for (const name of names) models.push(await demoOneModel(name, variants, opts, outDir));
    return { models, outDir: opts.outDir, seconds: (performance.now() - t0) / 1000 };
  } finally {
    opts.progress?.stop();
    if (!opts.outDir) {
      rmSync(outDir, { recursive: true, force: true });
      untrackTemp(outDir);
    }
  }
}

/** The report's data: the demo's rows as they are (the HTML renderer draws and tabulates them). */
export function demoReportData(result: DemoResult): ReportData {
  return {
    title: 'quantkit demo: every scheme on the shipped models',
    subtitle: `Measured with ONNX Runtime in one run (${result.seconds.toFixed(1)} s). Size is the .onnx file; latency is the median of timed runs relative to fp32. int8-static and +gptq rows are calibrated on the shipped calibration sets, never on the evaluation data.`,
    models: result.models,
  };
}

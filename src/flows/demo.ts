import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { decodeModel } from '../io/onnx/proto.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { SCHEMES, SCHEME_NAMES, type LayerReport, type SchemeName } from '../passes/weight-only/index.js';
import { quantizeModelBytes } from './quantize.js';
import { DEMO_MODEL_NAMES, loadDemoModel, meanAbsDiff, openDemoSession, SHIPPED_MODELS_DIR, timePair, type DemoModel, type DemoModelName } from './demo-models.js';
import { histogram, weightGrids, type LayerWeights, type ModelReport, type ReportData, type SchemeRow } from './report-data.js';

/*
 * `quantkit demo`: every scheme the scheme table has, on each shipped model, measured in ONNX
 * Runtime in one run — file size, quality and its change from fp32, weight SQNR, latency ratio.
 * Nothing in the table is typed in: change a scheme and its row changes.
 */

/** One row of the demo: a scheme of the table with the options the demo sweeps. */
export interface DemoVariant {
  /** Row label, e.g. 'q4 b32' or 'q4-rtn b64'. */
  readonly label: string;
  readonly scheme: SchemeName;
  readonly blockSize?: number;
  readonly rtn?: boolean;
}

/** Block sizes swept for every block-wise scheme (MatMulNBits / MatMulBnb4). */
export const DEMO_BLOCK_SIZES = [32, 64, 128] as const;
/** Round-to-nearest q4 (ONNX Runtime's own quantizer) at this block size, the "int4 absmax" baseline NF4 is held against. */
const RTN_BLOCK_SIZE = 64;

/**
 * The rows, enumerated from the scheme table: a scheme without blocks gives one row; a block-wise
 * scheme one row per block size; a symmetric integer 4-bit scheme also its plain round-to-nearest
 * form. `only` filters by scheme name or label.
 */
export function demoVariants(only?: readonly string[]): DemoVariant[] {
  const out: DemoVariant[] = [];
  for (const name of SCHEME_NAMES) {
    const s = SCHEMES[name];
    if (!('defaultBlockSize' in s)) {
      out.push({ label: name, scheme: name });
      continue;
    }
    for (const b of DEMO_BLOCK_SIZES) out.push({ label: `${name} b${b}`, scheme: name, blockSize: b });
    if (s.kind === 'nbits' && s.symmetric && s.bits === 4) out.push({ label: `${name}-rtn b${RTN_BLOCK_SIZE}`, scheme: name, blockSize: RTN_BLOCK_SIZE, rtn: true });
  }
  if (!only || only.length === 0) return out;
  const wanted = new Set(only);
  const picked = out.filter((v) => wanted.has(v.scheme) || wanted.has(v.label));
  const unknown = only.filter((w) => !out.some((v) => v.scheme === w || v.label === w));
  if (unknown.length > 0) {
    throw new QuantkitError('QK_UNKNOWN_SCHEME', `unknown scheme ${unknown.map((u) => `'${u}'`).join(', ')} for the demo`, `use scheme names (${SCHEME_NAMES.join(', ')}) or row labels such as 'q4 b64'`);
  }
  return picked;
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
  /** Weight histogram bins in the report (default 80). */
  readonly histogramBins?: number;
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

interface Weights { readonly name: string; readonly dims: readonly number[]; readonly values: Float32Array; readonly energy: number }

/** The fp32 weights the schemes quantize: after BatchNormalization folding, as quantizeModel does. */
function readWeights(model: DemoModel): Map<string, Weights> {
  const m = modelFromProto(decodeModel(readFileSync(model.file), model.file), { label: model.file });
  foldBatchNorm(m);
  const out = new Map<string, Weights>();
  for (const init of m.graph.initializers.values()) {
    if (init.dtype !== 'float32' || init.dims.length < 2) continue;
    const values = init.load().data as Float32Array;
    let energy = 0;
    for (let i = 0; i < values.length; i++) energy += (values[i] as number) * (values[i] as number);
    out.set(init.name, { name: init.name, dims: init.dims, values, energy });
  }
  return out;
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

async function demoOneModel(name: DemoModelName, variants: readonly DemoVariant[], opts: DemoOptions, outDir: string): Promise<DemoModelResult> {
  const model = loadDemoModel(name, opts.modelsDir ?? SHIPPED_MODELS_DIR);
  const source = new Uint8Array(readFileSync(model.file));
  const weights = readWeights(model);
  opts.progress?.start(name, variants.length + 1);
  const warm = opts.warmRuns ?? 3;
  const timed = opts.timedRuns ?? 15;
  // The fp32 session stays open: each row's latency is timed against it, run for run.
  const baseSession = await openDemoSession(source, model.file);
  const rows: DemoRow[] = [];
  const quantizedLayers = new Set<string>();
  try {
    const base = await model.evaluate(baseSession);
    const baseTiming = await timePair(baseSession, baseSession, model.latencyFeeds, warm, timed);
    opts.progress?.step('fp32');
    const q0 = base.value;
    rows.push({
      scheme: 'fp32', file: '', bytes: source.length, ratio: 1, quality: q0, qualityChange: 0,
      ...(base.bitsPerChar === undefined ? {} : { bitsPerChar: base.bitsPerChar }),
      ...(base.logits ? { meanAbsLogitDiff: 0 } : {}), weightSqnrDb: null, layerSqnrDb: {}, latencyRatio: 1, latencyMs: baseTiming.baseMs,
    });
    for (const v of variants) {
      const { bytes, report } = quantizeModelBytes(source, { scheme: v.scheme, blockSize: v.blockSize, rtn: v.rtn }, model.file);
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
      const layerSqnrDb: Record<string, number | null> = {};
      for (const l of report.layers) {
        if (l.sqnrDb === null || !isWeightLayer(l)) continue;
        layerSqnrDb[l.weight] = l.sqnrDb;
        quantizedLayers.add(l.weight);
      }
      const weightSqnrDb = combinedSqnrDb(report.layers.filter(isWeightLayer).map((l) => ({ signal: weights.get(l.weight)?.energy ?? 0, sqnrDb: l.sqnrDb })));
      rows.push({
        scheme: v.label, file, bytes: bytes.length, ratio: source.length / bytes.length,
        quality: q.value, qualityChange: (q.value - q0) / q0,
        ...(q.bitsPerChar === undefined ? {} : { bitsPerChar: q.bitsPerChar }),
        ...(q.logits && base.logits ? { meanAbsLogitDiff: meanAbsDiff(q.logits, base.logits) } : {}),
        weightSqnrDb, layerSqnrDb, latencyRatio: t.otherMs / t.baseMs, latencyMs: t.otherMs,
      });
      opts.progress?.step(v.label);
    }
  } finally {
    await baseSession.release();
  }

  const bins = opts.histogramBins ?? 80;
  const layers: LayerWeights[] = [...weights.values()]
    .filter((w) => quantizedLayers.has(w.name))
    .map((w) => ({ name: w.name, dims: w.dims, histogram: histogram(w.values, bins), grids: weightGrids(w.values) }));
  return { name: model.name, description: model.description, quality: model.quality, rows, layers, calibration: [] };
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
  }
  try {
    const models: DemoModelResult[] = [];
    for (const name of names) models.push(await demoOneModel(name, variants, opts, outDir));
    return { models, outDir: opts.outDir, seconds: (performance.now() - t0) / 1000 };
  } finally {
    opts.progress?.stop();
    if (!opts.outDir) rmSync(outDir, { recursive: true, force: true });
  }
}

/** The report's data: the demo's rows as they are (the HTML renderer draws and tabulates them). */
export function demoReportData(result: DemoResult): ReportData {
  return {
    title: 'quantkit demo: every scheme on the shipped models',
    subtitle: `Measured with ONNX Runtime in one run (${result.seconds.toFixed(1)} s). Size is the .onnx file; latency is the median of timed runs relative to fp32.`,
    models: result.models,
  };
}

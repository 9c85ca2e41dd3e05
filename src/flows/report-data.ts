import { NF4_TABLE } from '../quant/codebook.js';

/*
 * The data an HTML report draws (web/report renders it). Lives in flows, not web, because flows
 * build it and may not import web; web imports these types and helpers. Browser-safe on purpose:
 * no Node imports here.
 */

/** A histogram over [min, max] in equal-width bins. */
export interface Histogram {
  readonly min: number;
  readonly max: number;
  readonly counts: readonly number[];
}

/** Quantization levels to draw over a weight histogram. */
export interface GridLevels {
  readonly label: string;
  readonly levels: readonly number[];
}

export interface LayerWeights {
  /** The weight initializer's name (the key of SchemeRow.layerSqnrDb). */
  readonly name: string;
  /** Names of the nodes that read it, in graph order: charts label a layer by them (an exported initializer is often just 'onnx::MatMul_265'). */
  readonly readers: readonly string[];
  readonly dims: readonly number[];
  readonly histogram: Histogram;
  /** Levels of the block (or channel) that holds the tensor's largest |w|; other blocks scale them down. */
  readonly grids: readonly GridLevels[];
}

/**
 * Where a row's per-layer series goes: `family` is the scheme (one colour per family), `variant`
 * what sets this row apart inside it (block size, +gptq, rtn: one marker and dash per variant),
 * `bits` what each stored weight costs (4-bit formats get their own panel: their SQNRs sit within a
 * few dB of each other, far below 8- and 16-bit ones).
 */
export interface SeriesKey {
  readonly family: string;
  readonly variant: string;
  readonly bits: number;
}

/** One scheme's measured result on one model (fp32 is the baseline row). */
export interface SchemeRow {
  readonly scheme: string;
  /** Absent: a family of its own (the scheme label), no variant, 8 bits. */
  readonly series?: SeriesKey;
  readonly bytes: number;
  /** fp32 bytes / these bytes. */
  readonly ratio: number;
  /** Perplexity for an LM, accuracy (0–1) for a classifier. */
  readonly quality: number;
  /** (quality − fp32 quality) / fp32 quality. */
  readonly qualityChange: number;
  /** Bits per character for an LM. */
  readonly bitsPerChar?: number;
  /** Mean |logit − fp32 logit| over the evaluation set. */
  readonly meanAbsLogitDiff?: number;
  /** Over all quantized weights together; null for fp32 or when no weight changed. */
  readonly weightSqnrDb: number | null;
  /** Why a quantized row has no weight SQNR (the tables show it as a footnote). */
  readonly weightSqnrNote?: string;
  /** Per quantized weight tensor; a missing layer was left in fp32. */
  readonly layerSqnrDb: Readonly<Record<string, number | null>>;
  /** Median latency / fp32 median latency, same run. */
  readonly latencyRatio: number | null;
}

export interface CalibrationThreshold {
  /** Calibration method name as `--method` spells it (minmax, percentile:99.99, entropy, mse). */
  readonly method: string;
  readonly lo: number;
  readonly hi: number;
}

export interface CalibrationPlot {
  readonly tensor: string;
  /** Over the tensor's observed [min, max] on the calibration set. */
  readonly histogram: Histogram;
  readonly thresholds: readonly CalibrationThreshold[];
}

export interface ModelReport {
  readonly name: string;
  readonly description: string;
  readonly quality: { readonly name: string; readonly higherIsBetter: boolean; readonly percent: boolean };
  readonly rows: readonly SchemeRow[];
  readonly layers: readonly LayerWeights[];
  readonly calibration: readonly CalibrationPlot[];
}

export interface ReportData {
  readonly title: string;
  readonly subtitle: string;
  readonly models: readonly ModelReport[];
}

/**
 * For each tensor, the names of the nodes that read it, in node order; a node without a name is
 * called by its op type.
 */
export function readersByTensor(
  nodes: Iterable<{ readonly name: string; readonly opType: string; readonly inputs: readonly string[] }>,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const n of nodes) {
    const label = n.name === '' ? n.opType : n.name;
    for (const t of new Set(n.inputs)) {
      if (t === '') continue;
      const list = out.get(t);
      if (!list) out.set(t, [label]);
      else if (!list.includes(label)) list.push(label);
    }
  }
  return out;
}

/** Equal-width histogram of finite values; an empty or constant input gets a one-wide range. */
export function histogram(values: Float32Array, bins: number): Histogram {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(min <= max)) {
    min = 0;
    max = 1;
  }
  if (min === max) {
    // ±0.5, or wider where 0.5 is below the value's float64 resolution.
    const half = Math.max(0.5, Math.abs(min) * 2 ** -20);
    min -= half;
    max += half;
  }
  const counts = new Array<number>(bins).fill(0);
  const scale = bins / (max - min);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) continue;
    const b = Math.max(0, Math.min(bins - 1, Math.floor((v - min) * scale))); // max lands in the last bin
    counts[b] = (counts[b] as number) + 1;
  }
  return { min, max, counts };
}

function maxAbs(w: Float32Array): number {
  let m = 0;
  for (let i = 0; i < w.length; i++) m = Math.max(m, Math.abs(w[i] as number));
  return m;
}

/**
 * The grids a reader compares: int8 symmetric (absmax / 127 per channel), 4-bit integer absmax
 * (MatMulNBits symmetric RTN: the largest magnitude maps to −8, so steps of absmax / 8 from −8 to
 * +7) and NF4 (absmax · the NF4 table). Each is drawn for the block that holds the largest |w|.
 */
export function weightGrids(w: Float32Array): GridLevels[] {
  const m = maxAbs(w);
  if (m === 0) return [];
  const int8 = Array.from({ length: 255 }, (_, i) => ((i - 127) * m) / 127);
  const int4 = Array.from({ length: 16 }, (_, i) => ((i - 8) * m) / 8);
  const nf4 = Array.from(NF4_TABLE, (v) => v * m);
  return [
    { label: 'int8 (255 levels)', levels: int8 },
    { label: 'int4 absmax (16 levels)', levels: int4 },
    { label: 'nf4 (16 levels)', levels: nf4 },
  ];
}

export interface ParetoPoint {
  readonly size: number;
  readonly quality: number;
}

/**
 * Indices of the points no other point beats on both size (smaller is better) and quality, sorted
 * by size. A point equal to another on both axes keeps the first.
 */
export function paretoFront(points: readonly ParetoPoint[], higherIsBetter: boolean): number[] {
  const better = (a: number, b: number) => (higherIsBetter ? a > b : a < b);
  const order = points
    .map((_, i) => i)
    .sort((a, b) => {
      const pa = points[a] as ParetoPoint;
      const pb = points[b] as ParetoPoint;
      return pa.size - pb.size || (better(pa.quality, pb.quality) ? -1 : better(pb.quality, pa.quality) ? 1 : a - b);
    });
  const front: number[] = [];
  let best: number | undefined;
  for (const i of order) {
    const q = (points[i] as ParetoPoint).quality;
    if (!Number.isFinite(q)) continue;
    if (best === undefined || better(q, best)) {
      front.push(i);
      best = q;
    }
  }
  return front;
}

/**
 * Folds a fine fixed-width histogram (bin i covers [lo + i·width, lo + (i+1)·width), as the
 * calibration observers keep it) into `bins` equal bins over [min, max], each fine bin going
 * whole to the display bin that holds its centre. The observers' bins are 20–40× finer than a
 * plot's, so the shift this makes is at most half a fine bin.
 */
export function rebinHistogram(
  counts: ArrayLike<number>,
  lo: number,
  width: number,
  min: number,
  max: number,
  bins: number,
): Histogram {
  if (!(min < max)) {
    let total = 0;
    for (let i = 0; i < counts.length; i++) total += counts[i] as number;
    const half = Math.max(0.5, Math.abs(min) * 2 ** -20);
    return { min: min - half, max: min + half, counts: [total] };
  }
  const out = new Array<number>(bins).fill(0);
  const scale = bins / (max - min);
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (c === 0) continue;
    const centre = lo + (i + 0.5) * width;
    const b = Math.max(0, Math.min(bins - 1, Math.floor((centre - min) * scale)));
    out[b] = (out[b] as number) + c;
  }
  return { min, max, counts: out };
}

/**
 * How far apart the methods' ranges of one tensor lie, relative to the observed range: (spread of
 * the lows + spread of the highs) / (observed max − observed min). 0 when every method chose the
 * same range (or only one method ran), up to ~1 when one method clips away most of the range.
 */
export function thresholdSpread(
  thresholds: readonly CalibrationThreshold[],
  observedMin: number,
  observedMax: number,
): number {
  const width = observedMax - observedMin;
  if (thresholds.length < 2 || !(width > 0)) return 0;
  let loMin = Infinity,
    loMax = -Infinity,
    hiMin = Infinity,
    hiMax = -Infinity;
  for (const t of thresholds) {
    loMin = Math.min(loMin, t.lo);
    loMax = Math.max(loMax, t.lo);
    hiMin = Math.min(hiMin, t.hi);
    hiMax = Math.max(hiMax, t.hi);
  }
  return (loMax - loMin + hiMax - hiMin) / width;
}

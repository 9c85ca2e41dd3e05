import type { Range } from './minmax.js';

/**
 * A fixed-range histogram filled batch by batch (memory: `bins` counts, whatever the number of
 * samples). The range comes from a first min-max pass over the calibration set, so every value
 * lands in a bin and no re-binning approximation is ever made (ONNX Runtime's collector re-bins
 * when a later batch exceeds the range, and caps the data it keeps; we do two passes instead).
 *
 * Two shapes, as the TensorRT procedure needs:
 *   'abs'    bins over [0, A] of |x|, A = max |x|  (TensorRT's histogram; used when x ≥ 0)
 *   'signed' bins over [-A, A] of x, symmetric so the edge between the two middle bins is
 *            exactly 0 and a clip window [-T, T] is a whole number of bins on each side
 */
export type HistogramKind = 'abs' | 'signed';

export const DEFAULT_HISTOGRAM_BINS = 2048;

export class Histogram {
  readonly counts: Float64Array;
  /** Width of one bin. 0 when the range is empty (every value 0): then everything is in bin 0. */
  readonly width: number;
  readonly lo: number;
  readonly hi: number;
  /** Exact zeros seen while `skipZeros` (they are then not in `counts`). */
  zeros = 0;

  /**
   * skipZeros: leave exact zeros out of the bins (counted in `zeros`). Zero is exactly
   * representable for every candidate range (the zero point makes it so), so a Relu's spike of
   * zeros carries no quantization error whatever the threshold; inside the entropy search it
   * would only weigh on the first level and push thresholds down.
   */
  constructor(
    readonly kind: HistogramKind,
    absMax: number,
    readonly bins = DEFAULT_HISTOGRAM_BINS,
    readonly skipZeros = false,
  ) {
    this.counts = new Float64Array(bins);
    const a = Number.isFinite(absMax) && absMax > 0 ? absMax : 0;
    this.lo = kind === 'abs' ? 0 : -a;
    this.hi = a;
    this.width = (this.hi - this.lo) / bins;
  }

  observe(x: Float32Array): void {
    const { counts, lo, width, bins } = this;
    const last = bins - 1;
    const abs = this.kind === 'abs';
    const inv = width > 0 ? 1 / width : 0;
    for (let i = 0; i < x.length; i++) {
      let v = x[i] as number;
      if (v - v !== 0) continue; // NaN/Inf: skipped, as the min-max pass did
      if (v === 0 && this.skipZeros) {
        this.zeros++;
        continue;
      }
      if (abs && v < 0) v = -v;
      let b = Math.floor((v - lo) * inv);
      // Values beyond the first pass's range cannot happen for the same data; clamp anyway.
      b = b < 0 ? 0 : b > last ? last : b;
      counts[b] = (counts[b] as number) + 1;
    }
  }

  total(): number {
    let s = 0;
    for (let i = 0; i < this.counts.length; i++) s += this.counts[i] as number;
    return s;
  }

  /** Lower edge of bin `i` (i may be `bins`, the upper edge of the last bin). */
  edge(i: number): number {
    return this.lo + i * this.width;
  }
}

/**
 * The value below which `q` (in [0, 1]) of the mass lies, interpolating linearly inside the bin
 * (values are taken as spread evenly over a bin).
 */
export function histogramQuantile(h: Histogram, q: number): number {
  const total = h.total();
  if (total === 0 || h.width === 0) return 0;
  const target = q * total;
  let acc = 0;
  for (let i = 0; i < h.bins; i++) {
    const c = h.counts[i] as number;
    if (acc + c >= target && c > 0) return h.edge(i) + ((target - acc) / c) * h.width;
    acc += c;
  }
  return h.hi;
}

/**
 * Percentile clip range from a histogram, the streaming twin of quant/range.ts percentileRange:
 * 'abs' histograms give the symmetric-magnitude answer (the p-th percentile of |x|, clipped to
 * the observed extremes); 'signed' ones [P(100-p), P(p)].
 */
export function histogramPercentileRange(h: Histogram, percentile: number, observed: Range): Range {
  const p = percentile / 100;
  if (h.kind === 'abs') {
    const a = histogramQuantile(h, p);
    return { lo: Math.max(observed.lo, -a), hi: Math.min(observed.hi, a) };
  }
  return { lo: Math.max(observed.lo, histogramQuantile(h, 1 - p)), hi: Math.min(observed.hi, histogramQuantile(h, p)) };
}

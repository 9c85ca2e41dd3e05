import { OptionError, QuantkitError } from '../errors.js';
import type { IntRange } from '../quant/affine.js';
import { entropyHistogram, entropyRange, type EntropyOptions } from './entropy.js';
import { DEFAULT_HISTOGRAM_BINS, Histogram, histogramPercentileRange } from './histogram.js';
import { MinMaxObserver, MovingAverageMinMaxObserver, type Range } from './minmax.js';
import { histogramMseRange } from './mse.js';

/** How an activation's quantization range is chosen from calibration data. */
export type CalibMethod =
  | { readonly kind: 'minmax' }
  | { readonly kind: 'moving-average'; readonly averagingConstant: number }
  | { readonly kind: 'percentile'; readonly percentile: number }
  | ({ readonly kind: 'entropy' } & EntropyOptions)
  | { readonly kind: 'mse'; readonly steps?: number; readonly minRatio?: number };

export const DEFAULT_PERCENTILE = 99.99;

/** `minmax | moving-average[:c] | percentile[:p] | entropy | mse` (the CLI's --method). */
export function parseCalibMethod(text: string): CalibMethod {
  const [name, arg, extra] = text.split(':');
  const num = (fallback: number, what: string, ok: (v: number) => boolean): number => {
    if (arg === undefined || arg === '') return fallback;
    const v = Number(arg);
    if (!Number.isFinite(v) || !ok(v))
      throw new OptionError(
        'QK_BAD_METHOD',
        `\`method\` ${text}: ${what} '${arg}' is out of range`,
        'e.g. percentile:99.99 or moving-average:0.01',
        ['method'],
      );
    return v;
  };
  if (extra !== undefined)
    throw new OptionError('QK_BAD_METHOD', `\`method\` ${text} has too many ':' parts`, 'use e.g. percentile:99.99', [
      'method',
    ]);
  switch (name) {
    case 'minmax':
      return { kind: 'minmax' };
    case 'moving-average':
      return { kind: 'moving-average', averagingConstant: num(0.01, 'averaging constant', (v) => v > 0 && v <= 1) };
    case 'percentile':
      return { kind: 'percentile', percentile: num(DEFAULT_PERCENTILE, 'percentile', (v) => v > 50 && v <= 100) };
    case 'entropy':
      return { kind: 'entropy' };
    case 'mse':
      return { kind: 'mse' };
    default:
      throw new QuantkitError(
        'QK_BAD_METHOD',
        `unknown calibration method '${text}'`,
        'use minmax, moving-average[:c], percentile[:p], entropy or mse',
      );
  }
}

export function methodName(m: CalibMethod): string {
  return m.kind === 'percentile' ? `percentile:${m.percentile}` : m.kind;
}

/** Whether the method needs a second pass that fills a histogram over the first pass's range. */
export function needsHistogram(m: CalibMethod): boolean {
  return m.kind === 'percentile' || m.kind === 'entropy' || m.kind === 'mse';
}

/**
 * One tensor's calibration state. Pass 1 (always): min-max (and the moving average). Pass 2
 * (histogram methods): a fixed-range histogram over pass 1's extremes. Memory: two numbers plus
 * at most 4096 bins per tensor, independent of the number of samples.
 */
export class TensorCalibrator {
  readonly minmax = new MinMaxObserver();
  private readonly moving: MovingAverageMinMaxObserver | undefined;
  private hist: Histogram | undefined;

  constructor(
    readonly name: string,
    readonly method: CalibMethod,
    readonly q: IntRange & { symmetric: boolean },
  ) {
    this.moving =
      method.kind === 'moving-average' ? new MovingAverageMinMaxObserver(method.averagingConstant) : undefined;
  }

  observeFirst(x: Float32Array): void {
    this.minmax.observe(x);
    this.moving?.observe(x);
  }

  /** Called between the passes: sizes the histogram from the extremes seen. */
  startSecond(): void {
    if (!needsHistogram(this.method)) return;
    const r = this.minmax.range();
    const a = Math.max(-r.lo, r.hi);
    // Symmetric (s8) activations always use TensorRT's |x| histogram; u8 ones a signed one
    // when negatives occur, so the clip window can sit on both sides.
    const hasNeg = r.lo < 0 && !this.q.symmetric;
    this.hist =
      this.method.kind === 'entropy'
        ? entropyHistogram(a, hasNeg)
        : new Histogram(hasNeg ? 'signed' : 'abs', a, hasNeg ? 2 * DEFAULT_HISTOGRAM_BINS : DEFAULT_HISTOGRAM_BINS);
  }

  observeSecond(x: Float32Array): void {
    this.hist?.observe(x);
  }

  histogram(): Histogram | undefined {
    return this.hist;
  }

  /** The chosen range. */
  range(): Range {
    const observed = this.minmax.range();
    const m = this.method;
    switch (m.kind) {
      case 'minmax':
        return observed;
      case 'moving-average':
        return (this.moving as MovingAverageMinMaxObserver).range();
      case 'percentile':
        return histogramPercentileRange(this.needHist(), m.percentile, observed);
      case 'entropy':
        return entropyRange(this.needHist(), observed, m);
      case 'mse':
        return histogramMseRange(this.needHist(), observed, this.q, m.steps, m.minRatio);
    }
  }

  private needHist(): Histogram {
    if (!this.hist)
      throw new QuantkitError(
        'QK_CALIB_NO_HISTOGRAM',
        `tensor '${this.name}': method ${methodName(this.method)} needs the histogram pass`,
        'call startSecond() and observeSecond() on the calibration data',
      );
    return this.hist;
  }
}

import type { IntRange } from '../quant/affine.js';
import { fakeQuantGrid, fakeQuantSquaredError } from '../quant/range.js';
import type { Histogram } from './histogram.js';
import type { Range } from './minmax.js';

/** Points sampled evenly inside each bin: values are taken as spread over the bin, not at its centre. */
const SUBSAMPLES = 8;

/**
 * Expected squared error of quantize→dequantize over [lo, hi] for the distribution the histogram
 * holds, in float32 like the real QuantizeLinear (half-even rounding, saturation). Bin centres
 * alone would make a grid that happens to align with them look error-free, so each bin is
 * sampled at SUBSAMPLES evenly spaced points.
 */
export function histogramFakeQuantMse(
  h: Histogram,
  lo: number,
  hi: number,
  q: IntRange & { symmetric: boolean },
): number {
  const { scale, a, b } = fakeQuantGrid(lo, hi, q);
  const abs = h.kind === 'abs';
  let err = 0;
  let total = 0;
  for (let i = 0; i < h.bins; i++) {
    const c = h.counts[i] as number;
    if (c === 0) continue;
    total += c;
    let e = 0;
    for (let s = 0; s < SUBSAMPLES; s++) {
      const x = h.edge(i) + ((s + 0.5) / SUBSAMPLES) * h.width;
      e += fakeQuantSquaredError(x, scale, a, b);
      // An 'abs' histogram merged x and -x; when the range is asymmetric they differ.
      if (abs && lo < 0) e += fakeQuantSquaredError(-x, scale, a, b);
    }
    err += (c * e) / (abs && lo < 0 ? 2 * SUBSAMPLES : SUBSAMPLES);
  }
  return total === 0 ? 0 : err / total;
}

/**
 * MSE-optimal activation range: the clip-ratio grid of quant/range.ts mseRange (ratios 1 down to
 * minRatio of the observed range, both ends shrunk together), scored on the streamed histogram
 * instead of on every value.
 */
export function histogramMseRange(
  h: Histogram,
  observed: Range,
  q: IntRange & { symmetric: boolean },
  steps = 100,
  minRatio = 0.2,
): Range {
  if (!(observed.lo <= observed.hi)) return { lo: 0, hi: 0 };
  let best: Range = observed;
  let bestErr = Infinity;
  for (let k = 0; k <= steps; k++) {
    const r = 1 - ((1 - minRatio) * k) / steps;
    const lo = observed.lo * r;
    const hi = observed.hi * r;
    const e = histogramFakeQuantMse(h, lo, hi, q);
    if (e < bestErr) {
      bestErr = e;
      best = { lo, hi };
    }
  }
  return best;
}

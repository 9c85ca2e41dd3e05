import { QuantkitError } from '../errors.js';
import { ROUNDER } from '../formats/rounding.js';
import type { IntRange, NonFinite } from './affine.js';
import { nonFiniteError, paramsFromRange } from './affine.js';
import type { BlockLayout } from './layout.js';
import { gatherBlocks } from './layout.js';

/**
 * Range choosers: which real interval [lo, hi] a block of values is quantized over. The
 * calibration observers reuse them on activations; weight quantizers call them per block.
 *   minmax      the observed extremes (ONNX Runtime's default)
 *   absmax      ±max|x| (symmetric)
 *   percentile  clip the tails: the p-th percentile of x (or of |x| when symmetric)
 *   mse         search clip ratios of the min-max range for the least reconstruction error
 */
export type RangeMethod =
  | { readonly kind: 'minmax' }
  | { readonly kind: 'absmax' }
  | { readonly kind: 'percentile'; readonly percentile: number }
  | { readonly kind: 'mse'; readonly steps?: number; readonly minRatio?: number };

export interface BlockRanges {
  readonly lo: Float32Array;
  readonly hi: Float32Array;
}

/** Min and max of each block in one pass; NaN/Inf fail (or are skipped with nonFinite 'clamp'). */
export function blockMinMax(
  data: Float32Array,
  layout: BlockLayout,
  nonFinite: NonFinite = 'error',
  name = 'tensor',
): BlockRanges {
  const lo = new Float32Array(layout.numBlocks).fill(Infinity);
  const hi = new Float32Array(layout.numBlocks).fill(-Infinity);
  const clamp = nonFinite === 'clamp';
  // forEachRun inlined (a callback per run deoptimises the hot loop).
  const { rows, rowLen, colBlock, rowBase } = layout;
  for (let row = 0; row < rows; row++) {
    const rowStart = row * rowLen;
    for (let j = 0, b = rowBase[row] as number; j < rowLen; j += colBlock, b++) {
      const start = rowStart + j;
      const end = rowStart + Math.min(j + colBlock, rowLen);
      let mn = lo[b] as number;
      let mx = hi[b] as number;
      for (let i = start; i < end; i++) {
        const x = data[i] as number;
        if (x - x !== 0) {
          if (!clamp) throw nonFiniteError(i, x, name);
          continue;
        }
        if (x < mn) mn = x;
        if (x > mx) mx = x;
      }
      lo[b] = mn;
      hi[b] = mx;
    }
  }
  // Blocks with no finite value (empty, or all NaN under 'clamp') get the empty range [0, 0].
  for (let b = 0; b < layout.numBlocks; b++) {
    if ((lo[b] as number) > (hi[b] as number)) {
      lo[b] = 0;
      hi[b] = 0;
    }
  }
  return { lo, hi };
}

/** Linear-interpolated quantile of sorted values (numpy's default 'linear' method), q in [0, 1]. */
export function sortedQuantile(sorted: Float32Array, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const pos = q * (n - 1);
  const i = Math.floor(pos);
  const t = pos - i;
  const a = sorted[i] as number;
  return i + 1 < n ? a + ((sorted[i + 1] as number) - a) * t : a;
}

/** Clip range at the given percentile (e.g. 99.99): [P(100-p), P(p)], or ±P_|x|(p) when symmetric. */
export function percentileRange(
  values: Float32Array,
  percentile: number,
  symmetric: boolean,
): { lo: number; hi: number } {
  if (!(percentile > 0 && percentile <= 100)) {
    throw new QuantkitError('QK_BAD_PERCENTILE', `percentile ${percentile} is outside (0, 100]`, 'use e.g. 99.99');
  }
  if (symmetric) {
    const abs = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) abs[i] = Math.abs(values[i] as number);
    abs.sort();
    const a = sortedQuantile(abs, percentile / 100);
    return { lo: -a, hi: a };
  }
  const sorted = Float32Array.from(values).sort();
  return { lo: sortedQuantile(sorted, 1 - percentile / 100), hi: sortedQuantile(sorted, percentile / 100) };
}

/** Mean squared error of quantize→dequantize of `values` over [lo, hi] (float32 like the real path). */
export function fakeQuantMse(
  values: Float32Array,
  lo: number,
  hi: number,
  q: IntRange & { symmetric: boolean },
): number {
  const { scale, a, b } = fakeQuantGrid(lo, hi, q);
  let err = 0;
  for (let i = 0; i < values.length; i++) err += fakeQuantSquaredError(values[i] as number, scale, a, b);
  return values.length === 0 ? 0 : err / values.length;
}

/** The scale for [lo, hi] and the code range with the zero point taken out: fakeQuantSquaredError's a, b. */
export function fakeQuantGrid(
  lo: number,
  hi: number,
  q: IntRange & { symmetric: boolean },
): { scale: number; a: number; b: number } {
  const { scale, zeroPoint } = paramsFromRange(lo, hi, q);
  return { scale, a: q.qmin - zeroPoint, b: q.qmax - zeroPoint };
}

/**
 * (x − dequantize(quantize(x)))² in float32 as QuantizeLinear computes it (half-even rounding,
 * saturation), the zero point already taken out of the code range: a = qmin − zp, b = qmax − zp.
 */
export function fakeQuantSquaredError(x: number, scale: number, a: number, b: number): number {
  let v = Math.fround(x / scale);
  v = v < a ? a : v > b ? b : v;
  // v is clamped to the code range, so ROUNDER's half-even rounding is exact.
  const d = x - Math.fround((v + ROUNDER - ROUNDER) * scale);
  return d * d;
}

/**
 * MSE-optimal clipping: try clip ratios r = 1, 1 - δ, …, minRatio of the min-max range (both ends
 * shrunk by r) and keep the one with the least reconstruction error. Grid search, because the
 * error is not convex in r for real data.
 */
export function mseRange(
  values: Float32Array,
  q: IntRange & { symmetric: boolean },
  steps = 100,
  minRatio = 0.2,
): { lo: number; hi: number } {
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number;
    if (x < mn) mn = x;
    if (x > mx) mx = x;
  }
  if (!(mn <= mx)) return { lo: 0, hi: 0 };
  let best = { lo: mn, hi: mx };
  let bestErr = Infinity;
  for (let k = 0; k <= steps; k++) {
    const r = 1 - ((1 - minRatio) * k) / steps;
    const lo = mn * r;
    const hi = mx * r;
    const e = fakeQuantMse(values, lo, hi, q);
    if (e < bestErr) {
      bestErr = e;
      best = { lo, hi };
    }
  }
  return best;
}

/** Ranges for every block of a layout by the chosen method. */
export function blockRanges(
  data: Float32Array,
  layout: BlockLayout,
  method: RangeMethod,
  q: IntRange & { symmetric: boolean },
  nonFinite: NonFinite = 'error',
  name = 'tensor',
): BlockRanges {
  const mm = blockMinMax(data, layout, nonFinite, name); // also the non-finite check
  if (method.kind === 'minmax') return mm;
  if (method.kind === 'absmax') {
    for (let b = 0; b < layout.numBlocks; b++) {
      const a = Math.max(-(mm.lo[b] as number), mm.hi[b] as number);
      mm.lo[b] = -a;
      mm.hi[b] = a;
    }
    return mm;
  }
  const { values, offsets } = gatherBlocks(data, layout);
  const lo = new Float32Array(layout.numBlocks);
  const hi = new Float32Array(layout.numBlocks);
  for (let b = 0; b < layout.numBlocks; b++) {
    let block = values.subarray(offsets[b] as number, offsets[b + 1] as number);
    if (nonFinite === 'clamp') block = block.filter((x) => Number.isFinite(x));
    const r =
      method.kind === 'percentile'
        ? percentileRange(block, method.percentile, q.symmetric)
        : mseRange(block, q, method.steps, method.minRatio);
    lo[b] = r.lo;
    hi[b] = r.hi;
  }
  return { lo, hi };
}

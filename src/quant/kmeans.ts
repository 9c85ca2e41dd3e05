import { QuantkitError } from '../errors.js';
import { mulberry32 } from './prng.js';

export interface KMeansOptions {
  /** Number of codes, 2…256. */
  readonly k: number;
  readonly seed?: number | undefined;
  readonly maxIterations?: number | undefined;
  /** k-means++ seeding runs on at most this many sampled points (the D² pass is O(sample·k)). */
  readonly initSample?: number | undefined;
  /**
   * Starting centroids: 'kmeans++' (default, seeded) or 'linear', evenly spaced over [min, max]
   * (Deep Compression §3.2: the large weights, few but important, keep centroids of their own).
   */
  readonly init?: 'kmeans++' | 'linear' | undefined;
}

function lowerBound(a: Float32Array, x: number, lo: number, hi: number): number {
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if ((a[m] as number) < x) lo = m + 1;
    else hi = m;
  }
  return lo;
}

/**
 * 1-D k-means (Lloyd) with k-means++ seeding from a seeded PRNG. In one dimension the clusters of
 * sorted centroids are contiguous runs of the sorted data, split at the centroid midpoints, so one
 * iteration is k binary searches plus prefix-sum means: O(k log n) after one O(n log n) sort.
 * Returns k centroids, ascending (repeated values when the data has fewer than k distinct values).
 */
export function kmeans1d(data: Float32Array, opts: KMeansOptions): Float32Array {
  const { k } = opts;
  if (!Number.isInteger(k) || k < 2 || k > 256) {
    throw new QuantkitError('QK_BAD_KMEANS_K', `k-means needs 2 to 256 codes, got ${k}`, 'use bits 1…8 (k = 2^bits)');
  }
  const n = data.length;
  const centroids = new Float64Array(k);
  if (n === 0) return new Float32Array(k);
  const sorted = Float32Array.from(data).sort();
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = (prefix[i] as number) + (sorted[i] as number);

  if (opts.init === 'linear') {
    const lo = sorted[0] as number;
    const hi = sorted[n - 1] as number;
    for (let j = 0; j < k; j++) centroids[j] = lo + ((hi - lo) * j) / (k - 1);
  } else seedPlusPlus(sorted, centroids, opts);
  lloyd(sorted, prefix, centroids, opts.maxIterations ?? 100);
  return Float32Array.from(centroids);
}

/** k-means++ seeding on a sample: each next centre drawn with probability ∝ D(x)². */
function seedPlusPlus(sorted: Float32Array, centroids: Float64Array, opts: KMeansOptions): void {
  const n = sorted.length;
  const k = centroids.length;
  const rand = mulberry32(opts.seed ?? 1);
  const m = Math.min(n, opts.initSample ?? 16384);
  const sample = new Float64Array(m);
  for (let i = 0; i < m; i++) sample[i] = sorted[m === n ? i : Math.floor(rand() * n)] as number;
  const d2 = new Float64Array(m).fill(Infinity);
  let c = sample[Math.floor(rand() * m)] as number;
  for (let j = 0; j < k; j++) {
    centroids[j] = c;
    let total = 0;
    for (let i = 0; i < m; i++) {
      const d = (sample[i] as number) - c;
      const v = Math.min(d2[i] as number, d * d);
      d2[i] = v;
      total += v;
    }
    if (total === 0) {
      c = sample[Math.floor(rand() * m)] as number;
      continue;
    }
    let r = rand() * total;
    let pick = m - 1;
    for (let i = 0; i < m; i++) {
      r -= d2[i] as number;
      if (r < 0) {
        pick = i;
        break;
      }
    }
    c = sample[pick] as number;
  }
  centroids.sort();
}

/** Lloyd iterations on sorted data (`centroids` ascending, updated in place). */
function lloyd(sorted: Float32Array, prefix: Float64Array, centroids: Float64Array, maxIt: number): void {
  const n = sorted.length;
  const k = centroids.length;
  for (let it = 0; it < maxIt; it++) {
    let moved = false;
    let start = 0;
    for (let j = 0; j < k; j++) {
      const end =
        j + 1 < k ? lowerBound(sorted, ((centroids[j] as number) + (centroids[j + 1] as number)) / 2, start, n) : n;
      if (end > start) {
        const mean = ((prefix[end] as number) - (prefix[start] as number)) / (end - start);
        if (mean !== centroids[j]) {
          centroids[j] = mean;
          moved = true;
        }
      }
      start = end;
    }
    if (!moved) break;
    centroids.sort();
  }
}

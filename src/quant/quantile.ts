import { sortedQuantile } from './range.js';

/**
 * Quantile quantization (Dettmers et al., 8-bit optimizers; QLoRA §3): k codes chosen so each
 * covers the same share of the data. Code i is the empirical quantile at probability
 * (i + 1/2) / k — the centre of the i-th equal-population bin (bitsandbytes estimate_quantiles
 * uses the same offset 1/(2k)).
 */
export function exactQuantiles(data: Float32Array, k: number): Float32Array {
  const sorted = Float32Array.from(data).sort();
  const out = new Float32Array(k);
  for (let i = 0; i < k; i++) out[i] = sortedQuantile(sorted, (i + 0.5) / k);
  return out;
}

/**
 * Fast approximate quantiles in O(n + bins): a histogram over [min, max] and the inverse of its
 * piecewise-linear CDF. The error of each quantile is at most one bin width, (max - min) / bins.
 */
export function approxQuantiles(data: Float32Array, k: number, bins = 8192): Float32Array {
  const n = data.length;
  const out = new Float32Array(k);
  if (n === 0) return out;
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = data[i] as number;
    if (x < mn) mn = x;
    if (x > mx) mx = x;
  }
  if (mn === mx) return out.fill(mn);
  const width = (mx - mn) / bins;
  const hist = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    let b = Math.floor(((data[i] as number) - mn) / width);
    if (b >= bins) b = bins - 1;
    hist[b] = (hist[b] as number) + 1;
  }
  // Walk the CDF once; targets are increasing, in the same position units as sortedQuantile.
  let cum = 0;
  let bin = 0;
  for (let i = 0; i < k; i++) {
    const target = ((i + 0.5) / k) * n;
    while (bin < bins - 1 && cum + (hist[bin] as number) < target) {
      cum += hist[bin] as number;
      bin++;
    }
    const h = hist[bin] as number;
    const t = h > 0 ? Math.min(1, Math.max(0, (target - cum) / h)) : 0.5;
    out[i] = mn + (bin + t) * width;
  }
  return out;
}

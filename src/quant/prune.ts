import { QuantkitError } from '../errors.js';

/*
 * Magnitude pruning (Han et al. 2015, "Learning both Weights and Connections"): the weights of
 * smallest |w| are set to zero. Exactly round(sparsity · n) of them, smallest magnitude first
 * and, among equal magnitudes, lowest index first, so the result does not depend on sort order.
 */

export function checkSparsity(sparsity: number, what = 'sparsity'): number {
  if (!(sparsity >= 0 && sparsity < 1))
    throw new QuantkitError(
      'QK_BAD_SPARSITY',
      `${what} ${sparsity} is not in [0, 1)`,
      'e.g. `prune` 0.8 zeroes 80 % of each layer',
    );
  return sparsity;
}

/** Which elements a magnitude prune to `sparsity` zeroes (1 = pruned). */
export function magnitudeMask(data: Float32Array, sparsity: number): Uint8Array {
  checkSparsity(sparsity);
  const n = data.length;
  const m = Math.round(sparsity * n);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const mag = Float64Array.from(data, (x) => Math.abs(x));
  order.sort((a, b) => (mag[a] as number) - (mag[b] as number) || a - b);
  const mask = new Uint8Array(n);
  for (let i = 0; i < m; i++) mask[order[i] as number] = 1;
  return mask;
}

/** `data` with the masked elements set to +0 (a new array). */
export function applyMask(data: Float32Array, mask: Uint8Array): Float32Array {
  const out = Float32Array.from(data);
  for (let i = 0; i < out.length; i++) if (mask[i]) out[i] = 0;
  return out;
}

/** Fraction of exact zeros. */
export function zeroFraction(data: Float32Array): number {
  let z = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0) z++;
  return data.length === 0 ? 0 : z / data.length;
}

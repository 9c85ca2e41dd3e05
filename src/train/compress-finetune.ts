import { QuantkitError } from '../errors.js';
import { groupOf, type KMeansWeights } from '../quant/kmeans-weights.js';

/*
 * The training-side arithmetic of Deep Compression (Han, Mao, Dally 2016), over plain arrays so
 * any training loop can use it:
 *   - k-means fine-tuning (§3.1): the weights are codebook[index], so ∂L/∂centroid_k is the sum of
 *     ∂L/∂W over the weights that share centroid k; indices stay fixed. With pruned weights the
 *     zero centroid (code 0 of a zeroCode codebook) is not trained.
 *   - pruning to a target sparsity step by step (Zhu & Gupta, "To prune, or not to prune", 2017):
 *     s_t = s_f + (s_0 − s_f)·(1 − (t − t_0)/(n·Δt))³ at every Δt-th step, so most weights go
 *     early, while the network still has redundancy to recover from.
 */

/** ∂L/∂codebooks ([groups · k]) from ∂L/∂W of the rebuilt weight (row-major, W's shape). */
export function centroidGradients(w: KMeansWeights, gradW: Float32Array): Float32Array {
  if (gradW.length !== w.codes.length)
    throw new QuantkitError(
      'QK_OPTIMIZER_STATE',
      `a gradient of ${gradW.length} elements for a k-means weight of ${w.codes.length}`,
      'pass the gradient of the weight the codebook rebuilds',
    );
  const out = new Float64Array(w.groups * w.k);
  const group = groupOf(w);
  for (let i = 0; i < gradW.length; i++) {
    const j = group(i) * w.k + (w.codes[i] as number);
    out[j] = (out[j] as number) + (gradW[i] as number);
  }
  if (w.zeroCode) for (let g = 0; g < w.groups; g++) out[g * w.k] = 0;
  return Float32Array.from(out);
}

export interface PruneSchedule {
  readonly final: number;
  readonly initial?: number | undefined;
  /** First and last pruning step (default 0 and `steps` · 0.75, leaving the rest to recover). */
  readonly begin?: number | undefined;
  readonly end?: number | undefined;
  /** Prune every this many steps (default 1). */
  readonly every?: number | undefined;
}

/** Target sparsity at `step` of `steps` (the cubic schedule above). */
export function sparsityAt(step: number, steps: number, s: PruneSchedule): number {
  const s0 = s.initial ?? 0;
  const begin = s.begin ?? 0;
  const end = s.end ?? Math.max(begin, Math.floor(steps * 0.75));
  const every = s.every ?? 1;
  if (step < begin) return s0;
  if (step >= end || end === begin) return s.final;
  const at = begin + Math.floor((step - begin) / every) * every;
  return s.final + (s0 - s.final) * (1 - (at - begin) / (end - begin)) ** 3;
}

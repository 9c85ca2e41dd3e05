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

/** One layer's sensitivity: its size and the loss increase when it alone is pruned to each level. */
export interface LayerSensitivity {
  readonly elements: number;
  /** Loss increase over the unpruned model at each of the common `levels` (same length). */
  readonly increase: readonly number[];
}

/**
 * Per-layer sparsities whose pruned count is `target` of all the layers' weights, chosen by
 * sensitivity (Han et al. 2015 §3.4 prune each layer by its own sensitivity; here the levels are
 * bought greedily): every layer starts unpruned, and the next level bought is the one adding the
 * least loss per weight it removes. A layer's curve is made non-decreasing first (a level can cost
 * no less than a lower one: noise otherwise buys it for free). The last purchase is cut to land on
 * the target exactly. A small layer that hurts (the first conv, the classifier) stays dense while
 * large redundant ones (the big fully connected layers) take most of the pruning.
 */
export function allocateSparsity(
  layers: readonly LayerSensitivity[],
  levels: readonly number[],
  target: number,
): number[] {
  if (
    levels[0] !== 0 ||
    levels.some((l, i) => i > 0 && !(l > (levels[i - 1] as number))) ||
    (levels[levels.length - 1] ?? 1) >= 1
  )
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `sparsity levels ${levels.join(', ')}`,
      'give increasing levels from 0, below 1',
    );
  const curves = layers.map((l) => {
    let top = 0;
    return levels.map((_, i) => (top = Math.max(top, l.increase[i] ?? Infinity, 0)));
  });
  const total = layers.reduce((s, l) => s + l.elements, 0);
  const need = target * total;
  const at = layers.map(() => 0);
  const out = layers.map(() => 0);
  let pruned = 0;
  while (pruned < need - 1e-9) {
    let best = -1;
    let bestCost = Infinity;
    layers.forEach((l, i) => {
      const k = at[i] as number;
      if (k + 1 >= levels.length || l.elements === 0) return;
      const c = curves[i] as number[];
      const removed = l.elements * ((levels[k + 1] as number) - (levels[k] as number));
      const cost = ((c[k + 1] as number) - (c[k] as number)) / removed;
      if (
        cost < bestCost ||
        (cost === bestCost && best >= 0 && l.elements > (layers[best] as LayerSensitivity).elements)
      ) {
        best = i;
        bestCost = cost;
      }
    });
    if (best < 0) break;
    const l = layers[best] as LayerSensitivity;
    const k = (at[best] as number) + 1;
    at[best] = k;
    const before = out[best] as number;
    out[best] = levels[k] as number;
    pruned += l.elements * ((levels[k] as number) - before);
    if (pruned > need) {
      out[best] = (out[best] as number) - (pruned - need) / l.elements;
      pruned = need;
    }
  }
  return out;
}

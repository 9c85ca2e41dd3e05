import type { Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { applyMask, checkSparsity, magnitudeMask } from '../quant/prune.js';
import { makeTensor } from '../tensor/tensor.js';
import { rejectStorage } from './weight-only/dq-storage.js';
import { findWeightSites, userSkipReason } from './weight-only/index.js';
import type { WeightSite } from './weight-only/types.js';

/*
 * Magnitude pruning of a model's weights (quant/prune.ts), layer by layer: every weight a
 * MatMul, Gemm, Conv or Gather reads (rank ≥ 2, the ones the kmeans scheme shares; biases and
 * norm scales stay) loses the `sparsity` fraction of its entries of smallest magnitude. A weight
 * read by several nodes is pruned once. In place; returns what was pruned.
 */

export interface PruneOptions {
  readonly sparsity: number;
  readonly exclude?: readonly string[] | undefined;
  readonly keepFirstLast?: boolean | undefined;
}

export interface PrunedWeight {
  readonly weight: string;
  readonly elements: number;
  readonly zeros: number;
}

/** The first site of each weight pruning and sharing take (rank ≥ 2, not kept by the user's flags). */
export function compressibleSites(
  model: Model,
  options: { readonly exclude?: readonly string[] | undefined; readonly keepFirstLast?: boolean | undefined },
): WeightSite[] {
  const sites = findWeightSites(model);
  const skip = userSkipReason(sites, {
    scheme: 'kmeans',
    exclude: options.exclude,
    keepFirstLast: options.keepFirstLast,
  });
  const kept = new Set(
    sites.filter((s) => skip(s) !== undefined || rejectStorage(s) !== undefined).map((s) => s.weight.name),
  );
  const seen = new Set<string>();
  return sites.filter((s) => {
    if (kept.has(s.weight.name) || seen.has(s.weight.name)) return false;
    seen.add(s.weight.name);
    return true;
  });
}

/** Zeros of each named weight, as the model holds them now. */
export function prunedWeights(model: Model, names: readonly string[]): PrunedWeight[] {
  return names.map((weight) => {
    const data = model.graph.initializers.get(weight)?.load().data as Float32Array;
    let zeros = 0;
    for (const x of data) if (x === 0) zeros++;
    return { weight, elements: data.length, zeros };
  });
}

export function pruneModel(model: Model, options: PruneOptions): PrunedWeight[] {
  checkSparsity(options.sparsity, '`prune`');
  const names: string[] = [];
  for (const site of compressibleSites(model, options)) {
    const w = site.weight;
    const data = w.load().data as Float32Array;
    const pruned = applyMask(data, magnitudeMask(data, options.sparsity));
    model.graph.initializers.set(w.name, memoryInitializer(w.name, makeTensor('float32', [...w.dims], pruned)));
    names.push(w.name);
  }
  return prunedWeights(model, names);
}

import type { Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { applyMask, checkSparsity, magnitudeMask } from '../quant/prune.js';
import { makeTensor } from '../tensor/tensor.js';
import { rejectStorage } from './weight-only/dq-storage.js';
import { findWeightSites, userSkipReason } from './weight-only/index.js';

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

export function pruneModel(model: Model, options: PruneOptions): PrunedWeight[] {
  checkSparsity(options.sparsity, '`prune`');
  const sites = findWeightSites(model);
  const skip = userSkipReason(sites, {
    scheme: 'kmeans',
    exclude: options.exclude,
    keepFirstLast: options.keepFirstLast,
  });
  const out: PrunedWeight[] = [];
  const done = new Set<string>();
  const kept = new Set(
    sites.filter((s) => skip(s) !== undefined || rejectStorage(s) !== undefined).map((s) => s.weight.name),
  );
  for (const site of sites) {
    const w = site.weight;
    if (done.has(w.name) || kept.has(w.name)) continue;
    done.add(w.name);
    const data = w.load().data as Float32Array;
    const pruned = applyMask(data, magnitudeMask(data, options.sparsity));
    model.graph.initializers.set(w.name, memoryInitializer(w.name, makeTensor('float32', [...w.dims], pruned)));
    let zeros = 0;
    for (const x of pruned) if (x === 0) zeros++;
    out.push({ weight: w.name, elements: data.length, zeros });
  }
  return out;
}

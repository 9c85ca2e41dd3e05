import type { ExternalBytes, Initializer, Model } from '../../graph/model.js';
import type { Int8Weights } from '../../quant/int8-quant.js';
import type { NBitsOptions, NBitsParts } from '../../quant/nbits-quant.js';
import { outputChannelAxis, rejectStorage } from './dq-storage.js';
import { findWeightSites, userSkipReason } from './index.js';
import { linearShape, rejectLinear } from './linear-site.js';
import { int8Key, nbitsKey, type Int8Key, type NBitsKey } from './result-key.js';
import { checkBlockSize, schemeByName } from './scheme.js';
import type { WeightOnlyOptions, WeightSite } from './types.js';

/*
 * Weight quantizations that can run ahead of the pass, anywhere (flows/quantize-pool.ts runs them
 * on worker threads, with job-run.ts): each job names an fp32 weight stored as external data (file location, byte
 * offset and length, so a worker reads it itself) and the exact kernel call its handler would
 * make; the handler then takes the result by key (WeightOnlyOptions.precomputed). A job the pass
 * ends up not using costs time only; a job that fails is simply not used, and the pass, computing
 * it again, raises the error it always raised.
 */

interface JobBase {
  readonly weight: string;
  readonly dims: readonly number[];
  /** External data: file location relative to the model, byte offset, byte length (4 · elements). */
  readonly location: string;
  readonly offset: number;
  readonly bytes: number;
}

/** Each job carries the key the handler looks its result up by (result-key.ts). */
export type WeightJob =
  | (JobBase & { readonly kind: 'nbits'; readonly key: NBitsKey; readonly K: number; readonly N: number; readonly transposed: boolean; readonly alpha: number; readonly o: NBitsOptions })
  | (JobBase & { readonly kind: 'int8'; readonly key: Int8Key; readonly axis: number });

export type WeightJobResult =
  | { readonly kind: 'nbits'; readonly key: NBitsKey; readonly parts: NBitsParts }
  | { readonly kind: 'int8'; readonly key: Int8Key; readonly weights: Int8Weights };

/** Where an untouched fp32 external initializer's bytes lie, or undefined. */
function externalBytes(init: Initializer): ExternalBytes | undefined {
  if (init.dtype !== 'float32') return undefined;
  try {
    return init.externalData?.();
  } catch {
    return undefined; // the pass reports it
  }
}

/** The jobs the pass would run for `options` (native q4/q4-asym/q8-block and int8 only). */
export function planWeightJobs(model: Model, options: WeightOnlyOptions): WeightJob[] {
  const scheme = schemeByName(options.scheme);
  const nbits = scheme.kind === 'nbits' && (options.format ?? 'native') === 'native' ? scheme : undefined;
  if (!nbits && scheme.kind !== 'dq-int8') return [];
  const sites = findWeightSites(model);
  const skipReason = userSkipReason(sites, options);
  const firstSite = new Map<string, WeightSite>();
  for (const s of sites) {
    if (skipReason(s)) continue;
    if (!firstSite.has(s.weight.name)) firstSite.set(s.weight.name, s);
  }
  const jobs: WeightJob[] = [];
  for (const [weight, site] of firstSite) {
    const where = externalBytes(site.weight);
    if (!where) continue;
    const dims = [...site.weight.dims];
    const bytes = 4 * dims.reduce((a, b) => a * b, 1);
    if (nbits) {
      if (rejectLinear(site, model.graph)) continue;
      const o: NBitsOptions = { bits: nbits.bits, blockSize: checkBlockSize(options.blockSize ?? nbits.defaultBlockSize), symmetric: nbits.symmetric, rtn: options.rtn ?? false };
      const shape = linearShape(site);
      jobs.push({ kind: 'nbits', key: nbitsKey(shape.id, o), weight, dims, ...where, bytes, K: shape.K, N: shape.N, transposed: shape.transposed, alpha: shape.alpha, o });
    } else {
      if (rejectStorage(site)) continue;
      const axis = outputChannelAxis(site);
      jobs.push({ kind: 'int8', key: int8Key(weight, axis), weight, dims, ...where, bytes, axis });
    }
  }
  return jobs;
}

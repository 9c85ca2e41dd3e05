import type { ExternalBytes, Initializer, Model } from '../../graph/model.js';
import type { Bnb4Options, Bnb4Weights } from '../../quant/bnb4-quant.js';
import type { Int8Weights } from '../../quant/int8-quant.js';
import type { NBitsOptions, NBitsParts } from '../../quant/nbits-quant.js';
import { dataFreeBnb4Options } from './bnb4-handler.js';
import { outputChannelAxis, rejectStorage } from './dq-storage.js';
import { findWeightSites, userSkipReason } from './index.js';
import { linearShape, rejectLinear, type LinearShape } from './linear-site.js';
import { bnb4Key, int8Key, nbitsKey, type Bnb4Key, type Int8Key, type NBitsKey } from './result-key.js';
import { checkBlockSize, nbitsOptionsFor, schemeByName } from './scheme.js';
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

/** What a worker needs of a linear weight's view: its [K, N] shape, layout and Gemm alpha. */
type LinearFields = Pick<LinearShape, 'K' | 'N' | 'transposed' | 'alpha'>;

function linearFields({ K, N, transposed, alpha }: LinearShape): LinearFields {
  return { K, N, transposed, alpha };
}

/** Each job carries the key the handler looks its result up by (result-key.ts). */
export type WeightJob =
  | (JobBase &
      LinearFields & {
        readonly kind: 'nbits';
        readonly key: NBitsKey;
        readonly o: NBitsOptions;
      })
  | (JobBase & { readonly kind: 'int8'; readonly key: Int8Key; readonly axis: number })
  | (JobBase &
      LinearFields & {
        readonly kind: 'bnb4';
        readonly key: Bnb4Key;
        readonly o: Bnb4Options;
        /** Part `part` of `parts`: elements [start, end) of the [N, K] layout, whole blocks. */
        readonly part: number;
        readonly parts: number;
        readonly start: number;
        readonly end: number;
      });

/**
 * What a worker sends back of a bnb4 result (codes are unpacked from `packed` when needed); for
 * one part of several, each block's Σx² and Σ(x − x̂)² (interleaved) instead of the totals, which
 * the pool sums in block order as the quantizer does, so the SQNR is the same to the last bit.
 */
export type Bnb4Parts = Omit<Bnb4Weights, 'codes'> & { readonly blockSums?: Float64Array };

/**
 * Parts a bnb4 weight is cut into: its blocks are independent, so two workers can share one big
 * weight (three weights on two threads would leave one idle for a third of the time). Not with
 * --double-quant, whose second-level constants span all blocks.
 */
function bnb4Parts(elements: number, o: Bnb4Options): number {
  return o.doubleQuant || elements < 4 * o.blockSize ? 1 : 2;
}

export type WeightJobResult =
  | { readonly kind: 'nbits'; readonly key: NBitsKey; readonly parts: NBitsParts }
  | { readonly kind: 'int8'; readonly key: Int8Key; readonly weights: Int8Weights }
  /** Part `part` of `of` of the weight's `elements` (the pool joins them: quantize-pool.ts). */
  | {
      readonly kind: 'bnb4';
      readonly key: Bnb4Key;
      readonly part: number;
      readonly of: number;
      readonly elements: number;
      readonly parts: Bnb4Parts;
    };

/** Where an untouched fp32 external initializer's bytes lie, or undefined. */
function externalBytes(init: Initializer): ExternalBytes | undefined {
  if (init.dtype !== 'float32') return undefined;
  try {
    return init.externalData?.();
  } catch {
    return undefined; // the pass reports it
  }
}

/** The jobs the pass would run for `options` (native q4/q4-asym/q8-block, nf4/fp4 and int8 only). */
export function planWeightJobs(model: Model, options: WeightOnlyOptions): WeightJob[] {
  const scheme = schemeByName(options.scheme);
  // HQQ is quantized by its handler on the main thread (no worker job kind for it).
  const nbits =
    scheme.kind === 'nbits' &&
    (options.format ?? 'native') === 'native' &&
    !options.hqq &&
    !options.outliers &&
    !('superBlock' in scheme) &&
    !('spqr' in scheme)
      ? scheme
      : undefined;
  const bnb4 = scheme.kind === 'bnb4' ? scheme : undefined;
  if (!nbits && !bnb4 && scheme.kind !== 'dq-int8') return [];
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
      const o: NBitsOptions = nbitsOptionsFor(
        nbits,
        checkBlockSize(options.blockSize ?? nbits.defaultBlockSize),
        options.rtn ?? false,
      );
      const shape = linearShape(site);
      jobs.push({
        kind: 'nbits',
        key: nbitsKey(shape.id, o),
        weight,
        dims,
        ...where,
        bytes,
        ...linearFields(shape),
        o,
      });
    } else if (bnb4) {
      if (rejectLinear(site, model.graph)) continue;
      const blockSize = checkBlockSize(options.blockSize ?? bnb4.defaultBlockSize);
      const shape = linearShape(site);
      const key = bnb4Key(shape.id, bnb4.type, blockSize, options.rtn ?? false);
      const o = dataFreeBnb4Options(bnb4.type, blockSize, options);
      const elements = shape.K * shape.N;
      const parts = bnb4Parts(elements, o);
      const blocks = Math.ceil(elements / blockSize);
      for (let part = 0; part < parts; part++) {
        const start = Math.round((blocks * part) / parts) * blockSize;
        const end = Math.min(elements, Math.round((blocks * (part + 1)) / parts) * blockSize);
        jobs.push({
          kind: 'bnb4',
          key,
          part,
          parts,
          start,
          end,
          weight,
          dims,
          ...where,
          bytes,
          ...linearFields(shape),
          o,
        });
      }
    } else {
      if (rejectStorage(site)) continue;
      const axis = outputChannelAxis(site);
      jobs.push({ kind: 'int8', key: int8Key(weight, axis), weight, dims, ...where, bytes, axis });
    }
  }
  return jobs;
}

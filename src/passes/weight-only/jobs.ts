import type { Initializer, Model } from '../../graph/model.js';
import { parseExternalDataRef } from '../../io/onnx/external.js';
import { TensorProto_DataLocation } from '../../io/onnx/proto.js';
import { int8Key, outputChannelAxis, quantizeInt8Channels, rejectStorage, type Int8Weights } from './dq-storage.js';
import { findWeightSites } from './index.js';
import { linearShape, rejectLinear } from './linear-site.js';
import { nbitsKey } from './nbits-handler.js';
import { quantizeNBitsMatrix, type NBitsOptions, type NBitsParts } from './nbits-quant.js';
import { checkBlockSize, schemeByName } from './scheme.js';
import type { WeightOnlyOptions, WeightSite } from './types.js';

/*
 * Weight quantizations that can run ahead of the pass, anywhere (flows/quantize-pool.ts runs them
 * on worker threads): each job names an fp32 weight stored as external data (file location, byte
 * offset and length, so a worker reads it itself) and the exact kernel call its handler would
 * make; the handler then takes the result by key (WeightOnlyOptions.precomputed). A job the pass
 * ends up not using costs time only; a job that fails is simply not used, and the pass, computing
 * it again, raises the error it always raised.
 */

interface JobBase {
  /** The key the handler looks the result up by. */
  readonly key: string;
  readonly weight: string;
  readonly dims: readonly number[];
  /** External data: file location relative to the model, byte offset, byte length (4 · elements). */
  readonly location: string;
  readonly offset: number;
  readonly bytes: number;
}

export type WeightJob =
  | (JobBase & { readonly kind: 'nbits'; readonly K: number; readonly N: number; readonly transposed: boolean; readonly alpha: number; readonly o: NBitsOptions })
  | (JobBase & { readonly kind: 'int8'; readonly axis: number });

export type WeightJobResult =
  | { readonly kind: 'nbits'; readonly key: string; readonly parts: NBitsParts }
  | { readonly kind: 'int8'; readonly key: string; readonly weights: Int8Weights };

/** Where an untouched fp32 external initializer's bytes lie, or undefined. */
function externalBytes(init: Initializer): { location: string; offset: number } | undefined {
  const p = init.source;
  if (!p || init.dtype !== 'float32' || p.dataLocation !== TensorProto_DataLocation.EXTERNAL) return undefined;
  try {
    const ref = parseExternalDataRef(p);
    return { location: ref.location, offset: ref.offset };
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
  const skipped = new Set<WeightSite>();
  if (options.keepFirstLast && sites.length > 0) {
    skipped.add(sites[0] as WeightSite);
    skipped.add(sites[sites.length - 1] as WeightSite);
  }
  const exclude = options.exclude ?? [];
  const firstSite = new Map<string, WeightSite>();
  for (const s of sites) {
    if (skipped.has(s) || exclude.some((e) => e === s.node.opType || e === s.node.name || e === s.weight.name)) continue;
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
      jobs.push({ kind: 'nbits', key: nbitsKey(shape.key, o), weight, dims, ...where, bytes, K: shape.K, N: shape.N, transposed: shape.transposed, alpha: shape.alpha, o });
    } else {
      if (rejectStorage(site)) continue;
      const axis = outputChannelAxis(site);
      jobs.push({ kind: 'int8', key: int8Key(weight, axis), weight, dims, ...where, bytes, axis });
    }
  }
  return jobs;
}

/** Runs one job on the weight's fp32 values; the result's buffers are the ones to transfer. */
export function runWeightJob(job: WeightJob, data: Float32Array): { result: WeightJobResult; transfer: ArrayBuffer[] } {
  if (job.kind === 'int8') {
    const weights = quantizeInt8Channels(data, job.dims, job.axis, job.weight);
    return { result: { kind: 'int8', key: job.key, weights }, transfer: [weights.codes.buffer as ArrayBuffer, weights.scale.buffer as ArrayBuffer] };
  }
  const w = quantizeNBitsMatrix(data, job.K, job.N, job.transposed, job.alpha, job.o);
  const parts: NBitsParts = { K: w.K, N: w.N, kBlocks: w.kBlocks, packed: w.packed, scales: w.scales, zeroPoints: w.zeroPoints, zp: w.zp, signalSq: w.signalSq, noiseSq: w.noiseSq };
  const transfer = [parts.packed.buffer, parts.scales.buffer, parts.zp.buffer] as ArrayBuffer[];
  if (parts.zeroPoints) transfer.push(parts.zeroPoints.buffer as ArrayBuffer);
  return { result: { kind: 'nbits', key: job.key, parts }, transfer };
}

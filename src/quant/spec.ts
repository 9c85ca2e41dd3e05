import type { NonFinite } from './affine.js';
import type { RangeMethod } from './range.js';
import type { Rounding } from '../formats/rounding.js';
import type { ScaleDtype } from './scale-dtype.js';

export type QuantFormat =
  | 'int8'
  | 'uint8'
  | 'int4'
  | 'uint4'
  | 'int2'
  | 'nf4'
  | 'fp4'
  | 'fp4-bnb'
  | 'float8e4m3fn'
  | 'float8e5m2'
  | 'float16'
  | 'bfloat16'
  | 'kmeans'
  | 'quantile'
  | 'dynamic-tree8';

/**
 * What to quantize to, as a plain object. Fields a format does not use are ignored.
 *   affine int formats: symmetric (default: signed yes, unsigned no), axis / blockSize (the
 *     granularity; none = per tensor), bits (overrides the format's width: 2–8 or 16),
 *     narrowRange (signed symmetric, default true: int8 → ±127), rounding, range, scaleDtype
 *   nf4 / fp4 / fp4-bnb / dynamic-tree8: blockSize of flat contiguous blocks (bitsandbytes
 *     layout; default 64, dynamic-tree8 4096), doubleQuant, scaleDtype
 *   float8*: a scale per axis / block / tensor so the absmax maps to the format's largest value
 *   float16 / bfloat16: a plain cast (codes are the bit patterns, scale 1)
 *   kmeans / quantile: bits (default 4, k = 2^bits), blockSize = group size of one codebook each
 *     (default: one codebook per tensor), seed (k-means), quantileMethod
 */
export interface QuantSpec {
  readonly format: QuantFormat;
  readonly symmetric?: boolean | undefined;
  readonly axis?: number | undefined;
  readonly blockSize?: number | undefined;
  readonly bits?: number | undefined;
  readonly doubleQuant?: boolean | undefined;
  readonly rounding?: Rounding | undefined;
  readonly narrowRange?: boolean | undefined;
  readonly scaleDtype?: ScaleDtype | undefined;
  readonly range?: RangeMethod | undefined;
  readonly nonFinite?: NonFinite | undefined;
  readonly seed?: number | undefined;
  readonly quantileMethod?: 'exact' | 'approx' | undefined;
  /** Tensor name for error messages. */
  readonly name?: string | undefined;
}

import type { NonFinite } from './affine.js';
import { nonFiniteError } from './affine.js';
import type { Codebook } from './codebook.js';
import { nearestCode } from './codebook.js';
import type { ScaleDtype } from './scale-dtype.js';
import { roundToDtype } from './scale-dtype.js';

/**
 * Block-wise absmax codebook quantization as bitsandbytes does it (quantize_blockwise /
 * quantize_4bit): the flattened tensor is cut into contiguous blocks of `blockSize` (the last one
 * may be shorter); each block stores absmax = max|x| and one code per element, the table entry
 * nearest to x · (1 / absmax). Dequantization is table[code] · absmax.
 */
export interface BlockwiseCodes {
  readonly codes: Uint8Array;
  /** One constant per block, as stored (rounded to the scale dtype): absmax / tableMax. */
  readonly absmax: Float32Array;
  readonly blockSize: number;
}

export interface BlockwiseOptions {
  readonly blockSize?: number | undefined;
  readonly scaleDtype?: ScaleDtype | undefined;
  readonly nonFinite?: NonFinite | undefined;
  readonly name?: string | undefined;
  /**
   * Largest table magnitude: the stored constant is absmax / tableMax, so codes index an
   * unnormalised table (6 for OCP E2M1, giving MX-style scales). 1 for normalised tables
   * (NF4, bitsandbytes FP4, dynamic tree), where the constant is absmax itself.
   */
  readonly tableMax?: number | undefined;
}

export const DEFAULT_CODEBOOK_BLOCK = 64;

export function quantizeBlockwise(data: Float32Array, cb: Codebook, opts: BlockwiseOptions = {}): BlockwiseCodes {
  const blockSize = opts.blockSize ?? DEFAULT_CODEBOOK_BLOCK;
  const n = data.length;
  const nb = Math.ceil(n / blockSize);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(nb);
  const clamp = opts.nonFinite === 'clamp';
  const zeroCode = nearestCode(cb, 0);
  let hiCode = 0;
  let loCode = 0;
  for (let c = 0; c < cb.values.length; c++) {
    if ((cb.values[c] as number) > (cb.values[hiCode] as number)) hiCode = c;
    if ((cb.values[c] as number) < (cb.values[loCode] as number)) loCode = c;
  }
  for (let b = 0; b < nb; b++) {
    const start = b * blockSize;
    const end = Math.min(start + blockSize, n);
    let a = 0;
    for (let i = start; i < end; i++) {
      const x = data[i] as number;
      if (x - x !== 0) {
        if (!clamp) throw nonFiniteError(i, x, opts.name);
        continue;
      }
      const m = x < 0 ? -x : x;
      if (m > a) a = m;
    }
    const stored = roundToDtype(a / (opts.tableMax ?? 1), opts.scaleDtype ?? 'float32');
    absmax[b] = stored;
    if (stored === 0) {
      codes.fill(zeroCode, start, end);
      continue;
    }
    // bitsandbytes multiplies by the float32 reciprocal (kQuantizeBlockwise), so do we.
    const inv = Math.fround(1 / stored);
    for (let i = start; i < end; i++) {
      const x = data[i] as number;
      if (x - x !== 0) codes[i] = x !== x ? zeroCode : x > 0 ? hiCode : loCode;
      else codes[i] = nearestCode(cb, Math.fround(x * inv));
    }
  }
  return { codes, absmax, blockSize };
}

export function dequantizeBlockwise(
  q: BlockwiseCodes,
  table: Float32Array,
  out = new Float32Array(q.codes.length),
): Float32Array {
  const { codes, absmax, blockSize } = q;
  for (let i = 0; i < codes.length; i++) {
    out[i] = (table[codes[i] as number] as number) * (absmax[(i / blockSize) | 0] as number);
  }
  return out;
}

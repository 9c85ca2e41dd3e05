import { OptionError, QuantkitError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import { dtypeInfo } from '../tensor/dtype.js';
import { DOUBLE_QUANT_BLOCK } from './double-quant.js';
import { checkKMeansBits, indexSlotBits } from './kmeans-weights.js';
import type { ScaleDtype } from './scale-dtype.js';

/** Storage formats the footprint calculator knows (the CLI's --formats names). */
export type FootprintFormat = 'fp32' | 'fp16' | 'bf16' | 'fp8' | 'int8' | 'int4' | 'nf4' | 'kmeans';
/** The formats tabled by default. */
export const FOOTPRINT_FORMATS: readonly FootprintFormat[] = ['fp32', 'fp16', 'bf16', 'fp8', 'int8', 'int4', 'nf4'];
/** Every format the calculator knows (kmeans only when asked for). */
export const ALL_FOOTPRINT_FORMATS: readonly FootprintFormat[] = [...FOOTPRINT_FORMATS, 'kmeans'];

const CODE_BITS: Record<Exclude<FootprintFormat, 'kmeans'>, number> = {
  fp32: 32,
  fp16: 16,
  bf16: 16,
  fp8: 8,
  int8: 8,
  int4: 4,
  nf4: 4,
};
/** Formats that carry per-block constants (a scale per group; fp8 here is per-tensor scaled). */
const BLOCKED: ReadonlySet<FootprintFormat> = new Set(['int8', 'int4', 'nf4']);

export interface FootprintTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dtype: DType;
}

export interface FootprintOptions {
  readonly formats?: readonly FootprintFormat[] | undefined;
  /** Elements per block of constants (int8/int4/nf4). Default 64. */
  readonly groupSize?: number | undefined;
  /** Storage of each block constant. Default float32 (bitsandbytes' absmax). */
  readonly scaleDtype?: ScaleDtype | undefined;
  /** Asymmetric int formats also store a zero point per block, at the code width. */
  readonly zeroPoint?: boolean | undefined;
  /** QLoRA double quantization of the block constants: 8-bit codes + one fp32 per 256. */
  readonly doubleQuant?: boolean | undefined;
  /**
   * kmeans (the quantize scheme): index width (default 4), stored in the slot the scheme's graph
   * unpacks (1, 2, 4 or 8 bits), plus a float32 codebook of 2^bits per tensor.
   */
  readonly kmeansBits?: number | undefined;
  /** How many of the largest tensors to list. Default 10. */
  readonly top?: number | undefined;
}

export interface FootprintRow {
  readonly format: FootprintFormat;
  /** Quantized weights only (the seed's figures). */
  readonly weightBytes: number;
  /** Per-block constants: scales, zero points, double-quantization state. */
  readonly constantBytes: number;
  /** Tensors left as they are (non-float initializers). */
  readonly otherBytes: number;
  readonly totalBytes: number;
  /** (weightBytes + constantBytes) · 8 / params. */
  readonly bitsPerParam: number;
}

export interface FootprintReport {
  readonly params: number;
  readonly rows: readonly FootprintRow[];
  readonly biggest: readonly { name: string; dims: readonly number[]; dtype: DType; params: number; bytes: number }[];
}

const SCALE_BYTES: Record<ScaleDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };
const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(['float32', 'float64', 'float16', 'bfloat16']);

function count(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/**
 * Bytes of a model's weights in each storage format, with and without the per-block constants.
 * Weights are the float tensors; each is quantized on its own (its last block may be short).
 * `{ params: 13e9 }` gives the seed's weight-only table: 52 / 26 / 13 / 6.5 GB for
 * fp32 / fp16 / int8 / int4 and nf4.
 */
export function footprint(
  input: { params: number } | { tensors: readonly FootprintTensor[] },
  opts: FootprintOptions = {},
): FootprintReport {
  const tensors: FootprintTensor[] =
    'params' in input ? [{ name: 'params', dims: [input.params], dtype: 'float32' }] : [...input.tensors];
  if ('params' in input && !(Number.isFinite(input.params) && input.params >= 0 && Number.isInteger(input.params))) {
    throw new OptionError(
      'QK_BAD_PARAM_COUNT',
      `parameter count ${input.params} is not a non-negative integer`,
      'pass e.g. `params` 13e9',
      ['params'],
    );
  }
  const group = opts.groupSize ?? 64;
  if (!Number.isInteger(group) || group < 1)
    throw new QuantkitError('QK_BAD_BLOCK_SIZE', `group size ${group} is not a positive integer`, 'use e.g. 64');
  const scaleBytes = SCALE_BYTES[opts.scaleDtype ?? 'float32'];
  const formats = opts.formats ?? FOOTPRINT_FORMATS;

  let params = 0;
  let other = 0;
  const weights: number[] = [];
  for (const t of tensors) {
    const n = count(t.dims);
    if (FLOAT_DTYPES.has(t.dtype)) {
      weights.push(n);
      params += n;
    } else other += Math.ceil((n * dtypeInfo(t.dtype).bits) / 8);
  }

  const kmeansBits = checkKMeansBits(opts.kmeansBits ?? 4);
  const rows = formats.map((format): FootprintRow => {
    const bits = format === 'kmeans' ? indexSlotBits(kmeansBits) : CODE_BITS[format];
    let weightBytes = 0;
    let constantBytes = 0;
    for (const n of weights) {
      if (format === 'kmeans') constantBytes += 4 * 2 ** kmeansBits;
      weightBytes += Math.ceil((n * bits) / 8);
      if (format === 'fp8') constantBytes += 4; // one fp32 scale per tensor
      if (!BLOCKED.has(format)) continue;
      const blocks = Math.ceil(n / group);
      if (opts.doubleQuant) {
        constantBytes += blocks + 4 * Math.ceil(blocks / DOUBLE_QUANT_BLOCK) + 4; // 8-bit codes, fp32 per 256, the mean
      } else {
        constantBytes += blocks * scaleBytes;
      }
      if (opts.zeroPoint && format !== 'nf4') constantBytes += Math.ceil((blocks * bits) / 8);
    }
    return {
      format,
      weightBytes,
      constantBytes,
      otherBytes: other,
      totalBytes: weightBytes + constantBytes + other,
      bitsPerParam: params === 0 ? 0 : ((weightBytes + constantBytes) * 8) / params,
    };
  });

  const biggest = tensors
    .map((t) => {
      const n = count(t.dims);
      return {
        name: t.name,
        dims: t.dims,
        dtype: t.dtype,
        params: n,
        bytes: Math.ceil((n * dtypeInfo(t.dtype).bits) / 8),
      };
    })
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, opts.top ?? 10);
  return { params, rows, biggest };
}

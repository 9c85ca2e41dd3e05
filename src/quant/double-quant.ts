import type { BlockwiseCodes } from './blockwise.js';
import { dequantizeDynamicTree8, quantizeDynamicTree8 } from './dynamic-tree.js';

/**
 * Double quantization (QLoRA §3): the fp32 absmax constants of a block-wise quantization are
 * quantized again — their mean is subtracted (they are all positive, so centring uses the signed
 * map's range) and the rest goes to 8-bit dynamic-tree codes in blocks of 256, each with one fp32
 * absmax of its own (bitsandbytes quantize_4bit with compress_statistics=True).
 */
export interface DoubleQuantized {
  readonly offset: number;
  readonly inner: BlockwiseCodes;
}

export const DOUBLE_QUANT_BLOCK = 256;

export function doubleQuantize(absmax: Float32Array, blockSize = DOUBLE_QUANT_BLOCK): DoubleQuantized {
  let sum = 0;
  for (let i = 0; i < absmax.length; i++) sum += absmax[i] as number;
  const offset = absmax.length === 0 ? 0 : Math.fround(sum / absmax.length);
  const centred = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) centred[i] = (absmax[i] as number) - offset;
  return { offset, inner: quantizeDynamicTree8(centred, { blockSize }) };
}

/** The first-level constants back, as the dequantizer sees them: code value · absmax2 + mean. */
export function doubleDequantize(dq: DoubleQuantized): Float32Array {
  const out = dequantizeDynamicTree8(dq.inner);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + dq.offset;
  return out;
}

export interface BitsPerParamOptions {
  /** Bits of each code (4 for NF4). */
  readonly codeBits: number;
  /** Elements per first-level block. */
  readonly blockSize: number;
  /** Bits of each first-level constant without double quantization (32 for fp32 absmax). */
  readonly scaleBits?: number;
  readonly doubleQuant?: boolean;
  readonly doubleQuantBlock?: number;
}

/**
 * Storage bits per parameter, ignoring the single mean: codeBits + scaleBits/blockSize, or with
 * double quantization codeBits + 8/blockSize + 32/(blockSize·256). NF4, block 64:
 * 4.5 without, 4 + 0.125 + 0.001953 = 4.127 with (QLoRA's figure).
 */
export function bitsPerParameter(o: BitsPerParamOptions): number {
  if (o.doubleQuant) {
    const b2 = o.doubleQuantBlock ?? DOUBLE_QUANT_BLOCK;
    return o.codeBits + 8 / o.blockSize + 32 / (o.blockSize * b2);
  }
  return o.codeBits + (o.scaleBits ?? 32) / o.blockSize;
}

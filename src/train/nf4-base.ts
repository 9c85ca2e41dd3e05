import { quantizeBlockwise } from '../quant/blockwise.js';
import { NF4_TABLE, nf4Codebook } from '../quant/codebook.js';
import { doubleDequantize, doubleQuantize, type DoubleQuantized } from '../quant/double-quant.js';
import { packCodes } from '../quant/pack.js';

/*
 * A frozen weight as QLoRA holds it (Dettmers et al. 2023, §3; bitsandbytes quantize_4bit with
 * compress_statistics): the [rows, cols] matrix (PyTorch's Linear layout [out, in]) flattened and
 * cut into blocks of 64, one NF4 code per element (two a byte, first in the high nibble), and the
 * blocks' absmax double-quantized (8-bit dynamic-tree codes in blocks of 256 around their mean).
 * The codes are chosen against the fp32 absmax and dequantized against the double-quantized one,
 * as bitsandbytes does. Only these bytes stay in memory; training dequantizes per forward.
 */

export interface FrozenNf4 {
  readonly rows: number;
  readonly cols: number;
  readonly blockSize: number;
  /** NF4 codes, two a byte, first element in the high nibble. */
  readonly packed: Uint8Array;
  /** The blocks' absmax, double-quantized. */
  readonly absmax: DoubleQuantized;
}

export const NF4_BASE_BLOCK = 64;

export function freezeNf4(w: Float32Array, rows: number, cols: number, blockSize = NF4_BASE_BLOCK): FrozenNf4 {
  const q = quantizeBlockwise(w, nf4Codebook(), { blockSize });
  return { rows, cols, blockSize, packed: packCodes(q.codes, 4, 'high-first'), absmax: doubleQuantize(q.absmax) };
}

/** The [rows, cols] fp32 weight the forward pass computes with: NF4[code] · absmax (double-dequantized). */
export function dequantizeFrozenNf4(f: FrozenNf4): Float32Array {
  const absmax = doubleDequantize(f.absmax);
  const n = f.rows * f.cols;
  const out = new Float32Array(n);
  const bs = f.blockSize;
  for (let b = 0, start = 0; start < n; b++, start += bs) {
    const s = absmax[b] as number;
    const end = Math.min(start + bs, n);
    for (let i = start; i < end; i++) {
      const byte = f.packed[i >> 1] as number;
      const code = (i & 1) === 0 ? byte >> 4 : byte & 15;
      out[i] = Math.fround((NF4_TABLE[code] as number) * s);
    }
  }
  return out;
}

/** Bytes the frozen weight holds: codes, 8-bit absmax codes, their fp32 block constants and the mean. */
export function frozenNf4Bytes(f: FrozenNf4): number {
  return f.packed.byteLength + f.absmax.inner.codes.byteLength + f.absmax.inner.absmax.byteLength + 4;
}

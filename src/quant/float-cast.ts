import { decodeBfloat16, encodeBfloat16 } from '../formats/bfloat16.js';
import { decodeFloat16, encodeFloat16 } from '../formats/float16.js';
import type { NonFinite } from './affine.js';
import { nonFiniteError } from './affine.js';

/** Plain casts to 16-bit floats: codes are the bit patterns (tensor storage for float16/bfloat16). */
export function castTo16(
  data: Float32Array,
  format: 'float16' | 'bfloat16',
  nonFinite: NonFinite = 'error',
  name = 'tensor',
): Uint16Array {
  const enc = format === 'float16' ? encodeFloat16 : encodeBfloat16;
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    let x = data[i] as number;
    if (x - x !== 0) {
      if (nonFinite !== 'clamp') throw nonFiniteError(i, x, name);
      // 'clamp': saturate to the largest finite value, NaN to zero.
      x = x !== x ? 0 : x > 0 ? 3.4028234663852886e38 : -3.4028234663852886e38;
    }
    out[i] =
      format === 'float16' && (x > 65504 || x < -65504) && nonFinite === 'clamp' ? enc(x > 0 ? 65504 : -65504) : enc(x);
  }
  return out;
}

export function decode16(
  codes: Uint16Array,
  format: 'float16' | 'bfloat16',
  out = new Float32Array(codes.length),
): Float32Array {
  const dec = format === 'float16' ? decodeFloat16 : decodeBfloat16;
  for (let i = 0; i < codes.length; i++) out[i] = dec(codes[i] as number);
  return out;
}

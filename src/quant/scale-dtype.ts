import { decodeBfloat16, encodeBfloat16 } from '../formats/bfloat16.js';
import { decodeFloat16, encodeFloat16 } from '../formats/float16.js';

/** Storage type of per-block scales / absmax constants. */
export type ScaleDtype = 'float32' | 'float16' | 'bfloat16';

const FP16_MIN_SUBNORMAL = 2 ** -24;
const FP16_MAX = 65504;

/**
 * A positive scale as it will be stored: rounded (nearest-even) to the scale dtype, kept away from
 * 0 and Inf so 1/scale stays finite: an fp16 scale is clamped to [2^-24, 65504] first.
 */
export function storeScale(scale: number, dtype: ScaleDtype): number {
  if (dtype === 'float32') return Math.fround(scale);
  if (dtype === 'float16') {
    const s = scale < FP16_MIN_SUBNORMAL ? FP16_MIN_SUBNORMAL : scale > FP16_MAX ? FP16_MAX : scale;
    return decodeFloat16(encodeFloat16(s));
  }
  const r = decodeBfloat16(encodeBfloat16(scale));
  return Number.isFinite(r) && r > 0 ? r : scale > 1 ? 3.3895313892515355e38 : 2 ** -126;
}

/** Any value (e.g. an absmax constant, which may be 0) rounded to the dtype, without the floor. */
export function roundToDtype(x: number, dtype: ScaleDtype): number {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'float16') return decodeFloat16(encodeFloat16(x));
  return decodeBfloat16(encodeBfloat16(x));
}

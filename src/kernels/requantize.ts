/**
 * Fast twin of quant/requantize.ts: the same codes without BigInt. The 64-bit product a·b (up to
 * 2^62) does not fit a double's 53 bits, so b is split into 16-bit halves; every partial product
 * and sum below stays under 2^53 and is therefore exact.
 */
import { INT32_MAX, INT32_MIN, type CodeArray } from '../quant/requantize.js';

const TWO_15 = 2 ** 15;
const TWO_16 = 2 ** 16;
const TWO_30 = 2 ** 30;
const TWO_31 = 2 ** 31;

/**
 * floor((a·b + 2^30) / 2^31), which is what gemmlowp's nudge + truncation computes. With
 * b = bh·2^16 + bl: hi = a·bh (< 2^47), lo = a·bl + 2^30 (< 2^48); hi·2^16 = hq·2^31 + hr·2^16 with
 * hr in [0, 2^15), so the result is hq + floor((hr·2^16 + lo) / 2^31), all exact.
 */
export function saturatingRoundingDoublingHighMulFast(a: number, b: number): number {
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  const bl = b & 0xffff;
  const bh = (b - bl) / TWO_16;
  const hi = a * bh;
  const lo = a * bl + TWO_30;
  const hq = Math.floor(hi / TWO_15);
  const hr = hi - hq * TWO_15;
  return hq + Math.floor((hr * TWO_16 + lo) / TWO_31);
}

/** gemmlowp's RoundingDivideByPOT (already int32-only, so identical to the reference's body). */
function roundingDivideByPOTFast(x: number, exponent: number): number {
  const mask = ((1 << exponent) - 1) | 0;
  const threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + ((x & mask) > threshold ? 1 : 0);
}

/** requantize() of quant/requantize.ts without per-element checks; same arguments, same codes. */
export function requantizeFast<T extends CodeArray>(
  acc: Int32Array,
  m0: number,
  shift: number,
  zeroPoint: number,
  qmin: number,
  qmax: number,
  out: T,
): T {
  if (out.length !== acc.length) throw new RangeError('requantizeFast: output and accumulator lengths differ');
  const leftShift = shift < 0 ? -shift : 0;
  const rightShift = shift > 0 ? shift : 0;
  for (let i = 0; i < acc.length; i++) {
    const high = saturatingRoundingDoublingHighMulFast(acc[i]! << leftShift, m0);
    const v = roundingDivideByPOTFast(high, rightShift) + zeroPoint;
    out[i] = v < qmin ? qmin : v > qmax ? qmax : v;
  }
  return out;
}

/**
 * Fixed-point requantization as gemmlowp and TensorFlow Lite do it: an int32 accumulator times a
 * real multiplier M = s_x·s_w/s_y, computed with integers only so that every runtime that follows
 * these definitions produces the same codes.
 *
 * Convention (ours; TFLite's `shift` is the negation): M ≈ m0 · 2^(−31 − shift) with m0 in
 * [2^30, 2^31). shift ≥ 0 is a rounding right shift after the high multiply; shift < 0 is a plain
 * left shift of the accumulator before it (M ≥ 1).
 *
 * These are the plain references: readable, exact (BigInt where a 64-bit product is needed), slow.
 */
import { QuantkitError } from '../errors.js';

export const INT32_MIN = -0x80000000;
export const INT32_MAX = 0x7fffffff;

const TWO_31 = 2 ** 31;
const TWO_31_BIG = 1n << 31n;

/** A real multiplier as an int32 mantissa and a shift: M ≈ m0 · 2^(−31 − shift). */
export interface QuantizedMultiplier {
  m0: number;
  shift: number;
}

/**
 * C's frexp for a positive finite double: m = q · 2^e with q in [0.5, 1). Read from the bits so it
 * is exact for subnormals too (Math.log2 is not exact near powers of two).
 */
function frexpPositive(m: number): { q: number; e: number } {
  const view = new DataView(new ArrayBuffer(8));
  let scaleExp = 0;
  let x = m;
  if (x < 2 ** -1022) {
    // Subnormal: scale into the normal range first (exact: a power-of-two multiply).
    x *= 2 ** 64;
    scaleExp = -64;
  }
  view.setFloat64(0, x);
  const biased = (view.getUint16(0) >> 4) & 0x7ff;
  const e = biased - 1022;
  // Replace the exponent field with the one of 0.5 (biased 1022): q keeps x's mantissa bits.
  view.setUint16(0, (view.getUint16(0) & 0x800f) | (1022 << 4));
  return { q: view.getFloat64(0), e: e + scaleExp };
}

/**
 * TFLite's QuantizeMultiplier: frexp, m0 = round(q · 2^31) (q · 2^31 is exact, so this is the
 * nearest integer, ties away from zero), and when rounding reaches 2^31 halve it and bump the
 * exponent. A multiplier too small for a right shift of 31 becomes 0 (TFLite does the same): the
 * result would be 0 or ±1 anyway.
 */
export function quantizeMultiplier(m: number): QuantizedMultiplier {
  if (!Number.isFinite(m) || m < 0) {
    throw new QuantkitError(
      'QK_QUANT_DATA',
      `requantization multiplier ${m} is not a finite non-negative number`,
      'check the input, weight and output scales: each must be finite and positive',
    );
  }
  if (m === 0) return { m0: 0, shift: 0 };
  const { q, e } = frexpPositive(m);
  let m0 = Math.round(q * TWO_31);
  let exponent = e;
  if (m0 === TWO_31) {
    m0 /= 2;
    exponent += 1;
  }
  const shift = 0 - exponent; // not -exponent: that gives -0 for exponent 0
  if (shift > 31) return { m0: 0, shift: 0 };
  if (shift < -31) {
    throw new QuantkitError(
      'QK_QUANT_DATA',
      `requantization multiplier ${m} is too large (≥ 2^31) for an int32 left shift`,
      'check the output scale: it is far smaller than input scale × weight scale',
    );
  }
  return { m0, shift };
}

function checkInt32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) {
    throw new RangeError(`${name} = ${v} is not an int32`);
  }
}

/**
 * gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2·a·b, rounded. The only
 * product that does not fit (INT32_MIN · INT32_MIN = 2^62, i.e. +1.0 in Q31) saturates to
 * INT32_MAX. Written exactly as gemmlowp does (nudge, then C's truncating division) so a reader
 * can check it line by line; the tests check it against a different formulation.
 */
export function saturatingRoundingDoublingHighMul(a: number, b: number): number {
  checkInt32('a', a);
  checkInt32('b', b);
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  const ab = BigInt(a) * BigInt(b);
  const nudge = ab >= 0n ? 1n << 30n : 1n - (1n << 30n);
  // BigInt's `/` truncates toward zero, exactly as C's integer division does.
  return Number((ab + nudge) / TWO_31_BIG);
}

/**
 * gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero, with
 * int32 bit operations only (arithmetic shift is a floor; the threshold turns it into rounding).
 */
export function roundingDivideByPOT(x: number, exponent: number): number {
  checkInt32('x', x);
  if (!Number.isInteger(exponent) || exponent < 0 || exponent > 31) {
    throw new RangeError(`exponent = ${exponent} is outside [0, 31]`);
  }
  // (1 << 31) − 1 overflows JS's int32 shift result; |0 wraps it back to 0x7fffffff as in C.
  const mask = ((1 << exponent) - 1) | 0;
  const remainder = x & mask;
  const threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/**
 * TFLite's MultiplyByQuantizedMultiplier in our shift convention: left shift (M ≥ 1), high
 * multiply, rounding right shift. The left shift wraps on overflow as the compiled C++ does; callers
 * that can overflow (|x| · 2^−shift ≥ 2^31) must not use a multiplier ≥ 1.
 */
export function multiplyByQuantizedMultiplier(x: number, m0: number, shift: number): number {
  checkInt32('x', x);
  checkInt32('m0', m0);
  if (!Number.isInteger(shift) || shift < -31 || shift > 31) {
    throw new RangeError(`shift = ${shift} is outside [−31, 31]`);
  }
  const leftShift = shift < 0 ? -shift : 0;
  const rightShift = shift > 0 ? shift : 0;
  return roundingDivideByPOT(saturatingRoundingDoublingHighMul(x << leftShift, m0), rightShift);
}

/** Any integer typed array a requantized code can land in. */
export type CodeArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array;

/**
 * out[i] = clamp(multiplyByQuantizedMultiplier(acc[i]) + zeroPoint, qmin, qmax): the output stage
 * of an integer GEMM/conv. Returns `out`.
 */
export function requantize<T extends CodeArray>(
  acc: Int32Array,
  m0: number,
  shift: number,
  zeroPoint: number,
  qmin: number,
  qmax: number,
  out: T,
): T {
  if (out.length !== acc.length) {
    throw new QuantkitError(
      'QK_LENGTH_MISMATCH',
      `requantize: output length ${out.length} differs from accumulator length ${acc.length}`,
      'allocate the output with one code per accumulator',
    );
  }
  checkInt32('zeroPoint', zeroPoint);
  if (!Number.isInteger(qmin) || !Number.isInteger(qmax) || qmin > qmax) {
    throw new RangeError(`requantize: code range [${qmin}, ${qmax}] is empty or not integral`);
  }
  for (let i = 0; i < acc.length; i++) {
    const v = multiplyByQuantizedMultiplier(acc[i]!, m0, shift) + zeroPoint;
    out[i] = v < qmin ? qmin : v > qmax ? qmax : v;
  }
  return out;
}

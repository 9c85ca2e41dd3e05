import { roundHalfEven } from './bits.js';

export { roundHalfEven } from './bits.js';

/** Integer element types whose values fit a JS number exactly (int64/uint64 need BigInt). */
export type IntegerDType = 'int2' | 'uint2' | 'int4' | 'uint4' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32';

export const INTEGER_DTYPES: readonly IntegerDType[] = ['int2', 'uint2', 'int4', 'uint4', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32'];

const BITS: Record<IntegerDType, number> = {
  int2: 2, uint2: 2, int4: 4, uint4: 4, int8: 8, uint8: 8, int16: 16, uint16: 16, int32: 32, uint32: 32,
};

export function isIntegerDType(s: string): s is IntegerDType {
  return Object.prototype.hasOwnProperty.call(BITS, s);
}

export function integerBits(dtype: IntegerDType): number {
  return BITS[dtype];
}

export function isSignedInteger(dtype: IntegerDType): boolean {
  return dtype[0] === 'i';
}

/** Smallest value of `dtype`: -2^(bits-1) signed, 0 unsigned. */
export function integerMin(dtype: IntegerDType): number {
  return isSignedInteger(dtype) ? -(2 ** (BITS[dtype] - 1)) : 0;
}

/** Largest value of `dtype`: 2^(bits-1) − 1 signed, 2^bits − 1 unsigned. */
export function integerMax(dtype: IntegerDType): number {
  return isSignedInteger(dtype) ? 2 ** (BITS[dtype] - 1) - 1 : 2 ** BITS[dtype] - 1;
}

/**
 * What ONNX QuantizeLinear does to an already-scaled value (operators-quantization.md,
 * QuantizeLinear: "rounding to nearest ties to even", then "saturate"): round the exact value
 * half to even, then clamp to [min, max] of `dtype`. ±Inf clamp to the ends. NaN is left open
 * by ONNX; it gives 0 here so that one bad activation cannot turn into the extreme code.
 */
export function saturateRoundToInteger(x: number, dtype: IntegerDType): number {
  if (x !== x) return 0;
  const lo = integerMin(dtype);
  const hi = integerMax(dtype);
  if (x <= lo) return lo;
  if (x >= hi) return hi;
  const r = roundHalfEven(x);
  return r === 0 ? 0 : r; // no -0 in an integer
}

/** Same as saturateRoundToInteger with explicit bounds, for callers that clamp to a sub-range (e.g. symmetric int8 in [-127, 127]). */
export function saturateRoundToRange(x: number, lo: number, hi: number): number {
  if (x !== x) return 0;
  if (x <= lo) return lo;
  if (x >= hi) return hi;
  const r = roundHalfEven(x);
  return r === 0 ? 0 : r;
}

/**
 * Reduces an integer-valued number modulo 2^bits into `dtype`'s range (two's complement for signed):
 * what ONNX Cast does to an out-of-range integer ("discard higher bits and reinterpret",
 * e.g. 200 → int8 −56; the conformance case test_cast_FLOAT_to_INT4 has −9 → 7 and 8 → −8).
 * `x` must be an integer; any finite double is (ToInt32 is exact modulo 2^32).
 */
export function wrapToInteger(x: number, dtype: IntegerDType): number {
  const bits = BITS[dtype];
  const low32 = x | 0;
  if (bits === 32) return isSignedInteger(dtype) ? low32 : low32 >>> 0;
  const shift = 32 - bits;
  return isSignedInteger(dtype) ? (low32 << shift) >> shift : (low32 << shift) >>> shift;
}

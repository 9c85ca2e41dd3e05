/**
 * Number → integer conversions for the integer dtypes. Two different operations, both from ONNX:
 *
 * saturateToInt — what QuantizeLinear does ("For (x / y_scale), it rounds to the nearest even",
 *   then "saturate" to the type's range): round half to even, clamp to [min, max]. NaN → 0 (the
 *   spec leaves it undefined; 0 is the neutral code), ±Inf → max / min.
 *
 * castToInt — what ONNX Cast does from a float:
 *   4- and 2-bit targets (ONNX int4 page, "Cast"): round to nearest, ties to even, then keep the
 *     low bits (two's complement): 8 → int4 −8, −1 → uint4 15, as test_cast_FLOAT_to_INT4/UINT4
 *     and _INT2/_UINT2 pin. (ONNX Runtime 1.30 rounds ties away from zero here; we follow the spec.)
 *   8-, 16-, 32-bit targets: C-style truncation toward zero (ONNX's reference uses numpy astype).
 *     Out of range is undefined in the spec; we do what ONNX Runtime 1.30 (x86-64) measurably does
 *     (ort-cast.test.ts): a truncating conversion to int32 that gives INT32_MIN for NaN, ±Inf and
 *     |x| ≥ 2^31, then the low bits: 1e6 → int8 64, NaN → int8 0, NaN → int32 −2^31.
 *     uint32 keeps the value modulo 2^32 (ORT's uint32 results out of range follow no simple rule).
 */
import { roundHalfEven } from './rounding.js';

export type IntDType = 'int2' | 'uint2' | 'int4' | 'uint4' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32';

export const INT_DTYPES: readonly IntDType[] = [
  'int2',
  'uint2',
  'int4',
  'uint4',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
];

interface IntLayout {
  readonly bits: number;
  readonly signed: boolean;
  readonly min: number;
  readonly max: number;
}

function layout(bits: number, signed: boolean): IntLayout {
  return signed
    ? { bits, signed, min: -(2 ** (bits - 1)), max: 2 ** (bits - 1) - 1 }
    : { bits, signed, min: 0, max: 2 ** bits - 1 };
}

const LAYOUTS: Record<IntDType, IntLayout> = {
  int2: layout(2, true),
  uint2: layout(2, false),
  int4: layout(4, true),
  uint4: layout(4, false),
  int8: layout(8, true),
  uint8: layout(8, false),
  int16: layout(16, true),
  uint16: layout(16, false),
  int32: layout(32, true),
  uint32: layout(32, false),
};

export function isIntDType(s: string): s is IntDType {
  return Object.prototype.hasOwnProperty.call(LAYOUTS, s);
}

/** Inclusive range of an integer dtype, e.g. int4 → {min: −8, max: 7}. */
export function intRange(dtype: IntDType): { readonly min: number; readonly max: number } {
  return LAYOUTS[dtype];
}

/** QuantizeLinear's saturate(round_half_even(x)) into `dtype`'s range. NaN → 0. */
export function saturateToInt(x: number, dtype: IntDType): number {
  const { min, max } = LAYOUTS[dtype];
  if (x !== x) return 0;
  const r = roundHalfEven(x);
  return r < min ? min : r > max ? max : r + 0; // + 0: an integer code has no −0 (roundHalfEven(−0.5) is −0)
}

/** ONNX Cast float → integer `dtype` (see the module comment for the rules). */
export function castToInt(x: number, dtype: IntDType): number {
  const { bits, signed } = LAYOUTS[dtype];
  if (bits <= 4) {
    // `| 0` is ECMAScript ToInt32: exact modulo 2^32 for any finite double, 0 for NaN/±Inf,
    // so the low `bits` bits are the two's-complement low bits of the rounded value.
    const low = roundHalfEven(x) | 0;
    const shift = 32 - bits;
    return signed ? (low << shift) >> shift : (low << shift) >>> shift;
  }
  if (dtype === 'uint32') return (x | 0) >>> 0;
  // cvttss2si semantics: truncate toward zero when the result fits int32, else INT32_MIN (NaN
  // fails both comparisons and lands there too).
  const t = x > -2147483649 && x < 2147483648 ? x | 0 : -2147483648;
  switch (dtype) {
    case 'int8':
      return (t << 24) >> 24;
    case 'uint8':
      return t & 0xff;
    case 'int16':
      return (t << 16) >> 16;
    case 'uint16':
      return t & 0xffff;
    default:
      return t;
  }
}

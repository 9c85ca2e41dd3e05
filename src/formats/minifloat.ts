import { exponentOf, pow2 } from './bits.js';

/**
 * A binary floating format narrower than float64 (float16, bfloat16, the float8 kinds,
 * float4e2m1), described by its fields and by what it does with the values it cannot hold.
 * One encoder serves them all, so round-half-even and overflow are written once.
 */
export interface MinifloatSpec {
  readonly mantissaBits: number;
  readonly exponentBits: number;
  readonly bias: number;
  /** Largest finite magnitude code (sign bit clear). */
  readonly maxCode: number;
  /** Magnitude code of +Infinity, or -1 when the format has none. */
  readonly infCode: number;
  /** Code of the NaN an encoder produces, or -1 when the format has none (float4e2m1). */
  readonly nanCode: number;
  /** 'signed': NaN overflow keeps the sign (E4M3FN: -Inf → 0xFF); 'single': one NaN code (FNUZ). */
  readonly nanSign: 'signed' | 'single';
  /** FNUZ formats: no negative zero (its code is the NaN), so a negative value rounding to 0 gives +0. */
  readonly unsignedZero: boolean;
}

/**
 * Encodes the exact value of `x` with round-half-to-even on the mantissa.
 * `saturate`: finite values whose rounded magnitude exceeds the largest finite value, and ±Inf,
 * become ±max (ONNX Cast, saturate=1); otherwise they become ±Inf, or NaN where the format has no
 * infinity. Formats without NaN (float4e2m1) always saturate; NaN input then gives `nanInput`.
 */
export function encodeMinifloat(x: number, f: MinifloatSpec, saturate: boolean, nanInput: number = f.nanCode): number {
  const m = f.mantissaBits;
  const signBit = 1 << (m + f.exponentBits);
  if (x !== x) return nanInput;
  const negative = x < 0 || (x === 0 && 1 / x < 0);
  const sign = negative ? signBit : 0;
  const a = negative ? -x : x;
  let code: number;
  if (a === Infinity) {
    code = -1;
  } else {
    // Quantum of a's binade, never below the subnormal quantum: a / 2^q is then a number with at
    // most m+1 integer bits, and scaling by a power of two is exact.
    const emin = 1 - f.bias;
    const emax = (f.maxCode >> m) - f.bias;
    const e = exponentOf(a);
    if (e > emax) {
      code = -1;
    } else {
      const eq = e < emin ? emin : e;
      const scaled = a * pow2(m - eq);
      const floor = Math.floor(scaled);
      const frac = scaled - floor;
      const n = frac > 0.5 || (frac === 0.5 && (floor & 1) === 1) ? floor + 1 : floor;
      // Subnormals: code = n (n = 2^m lands on the smallest normal). Normals: the exponent field
      // is eq - emin + 1 and n carries the implicit bit, so a carry out of the mantissa moves to
      // the next binade by itself.
      code = ((eq - emin) << m) + n;
      if (code > f.maxCode) code = -1;
    }
  }
  if (code === -1) {
    // Out of range: ONNX Cast tables (operators-quantization.md, Cast; float8.md).
    if (saturate || (f.infCode < 0 && f.nanCode < 0)) return sign | f.maxCode;
    if (f.infCode >= 0) return sign | f.infCode;
    return f.nanSign === 'signed' ? sign | f.nanCode : f.nanCode;
  }
  if (code === 0 && f.unsignedZero) return 0;
  return sign | code;
}

/**
 * Value of `code` computed from its fields. Used to build decode tables, so it favours clarity;
 * `isNaN(code)` and `isInf(code)` say which codes are special.
 */
export function decodeMinifloat(code: number, f: MinifloatSpec, isNaN: (code: number) => boolean, isInf: (code: number) => boolean): number {
  if (isNaN(code)) return NaN;
  const m = f.mantissaBits;
  const signBit = 1 << (m + f.exponentBits);
  const negative = (code & signBit) !== 0;
  const mag = code & (signBit - 1);
  if (isInf(code)) return negative ? -Infinity : Infinity;
  const field = mag >> m;
  const mant = mag & ((1 << m) - 1);
  const v = field === 0 ? mant * pow2(1 - f.bias - m) : (mant + (1 << m)) * pow2(field - f.bias - m);
  return negative ? -v : v;
}

import { exponentOf, pow2 } from './minifloat.js';

/**
 * float8e8m0 (OCP MX scale type; ONNX float8 page, section E8M0): 8 exponent bits, bias 127, no
 * sign, no mantissa. Code c is 2^(c − 127) for c in 0..254 (2^−127 … 2^127); 0xFF is NaN. There is
 * no zero and no Inf.
 *
 * Encoding (ONNX Cast, attributes round_mode and saturate; defaults up / true):
 *   round_mode 'up'      the smallest power of two ≥ |x|
 *              'down'    the largest power of two ≤ |x|
 *              'nearest' the nearer of the two; the tie (|x| = 1.5·2^e) rounds up
 *   then a result above 2^127 or below 2^−127 is E8M0_MAX / E8M0_MIN when saturating, NaN if not.
 *   NaN → NaN. +Inf → E8M0_MAX if saturating, else NaN. 0 → E8M0_MIN if saturating, else NaN.
 * The spec leaves negative inputs (and −0) unspecified; like ONNX Runtime we treat them as below
 * the range: E8M0_MIN when saturating, NaN otherwise.
 */
export type E8m0RoundMode = 'up' | 'down' | 'nearest';

export const E8M0_NAN = 0xff;
export const E8M0_MAX = 0xfe;
export const E8M0_MIN = 0x00;
const BIAS = 127;

export function encodeE8m0(x: number, saturate = true, roundMode: E8m0RoundMode = 'up'): number {
  if (x !== x) return E8M0_NAN;
  if (x === Infinity) return saturate ? E8M0_MAX : E8M0_NAN;
  // 0, −0, negatives, −Inf; and double subnormals (< 2^−1022), which no rounding lifts into range.
  if (!(x >= 2.2250738585072014e-308)) return saturate ? E8M0_MIN : E8M0_NAN;
  let e = exponentOf(x); // 2^e ≤ x < 2^(e+1)
  if (x !== pow2(e)) {
    if (roundMode === 'up') e += 1;
    else if (roundMode === 'nearest' && x >= 1.5 * pow2(e)) e += 1; // 1.5·2^e is exact in binary64
  }
  const code = e + BIAS;
  if (code > E8M0_MAX) return saturate ? E8M0_MAX : E8M0_NAN;
  if (code < E8M0_MIN) return saturate ? E8M0_MIN : E8M0_NAN;
  return code;
}

// All 256 values, so decoding a tensor of scales is one lookup per element.
const TABLE = new Float64Array(256);
for (let c = 0; c < 255; c++) TABLE[c] = pow2(c - BIAS);
TABLE[E8M0_NAN] = NaN;

export function decodeE8m0(code: number): number {
  return TABLE[code & 0xff] as number;
}

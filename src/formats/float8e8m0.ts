import { exponentOf, pow2 } from './bits.js';

/** float8e8m0 round_mode (ONNX Cast): 'up' away from zero, 'down' toward zero, 'nearest' ties up. */
export type E8m0RoundMode = 'up' | 'down' | 'nearest';

export const E8M0_NAN = 0xff;
export const E8M0_MAX_CODE = 0xfe; // 2^127
export const E8M0_MIN_CODE = 0x00; // 2^-127

/**
 * float8e8m0 code for the exact value of `x`: the power of two 2^k chosen by `roundMode`, code
 * k + 127 (float8.md "E8M0": bias 127, no sign, no zero, NaN 0xFF).
 *   up:      smallest 2^k ≥ |x|;  down: largest 2^k ≤ |x|;
 *   nearest: 2^k or 2^(k+1) around |x|, whichever is closer, the midpoint 1.5·2^k rounding up.
 * Beyond the codes (ONNX Cast table for float8e8m0): with `saturate`, ±Inf and anything above
 * 2^127 → 0xFE, zero and anything below 2^-127 → 0x00; without, all of these → NaN (0xFF).
 * NaN → 0xFF always. Negative inputs are undefined in ONNX; like the ONNX reference
 * (numpy_helper.to_float8e8m0, which reads only the exponent bits) the sign is ignored.
 *
 * For float32 inputs in the normal range this equals the ONNX reference bit-for-bit. Below 2^-126
 * (float32 subnormals) it follows the exact value where the reference does not: the reference
 * sends every float32 subnormal to 2^-126 under 'up', so decode(0x00) = 2^-127 would not
 * round-trip; here it does.
 */
export function encodeE8m0(x: number, saturate = true, roundMode: E8m0RoundMode = 'up'): number {
  if (x !== x) return E8M0_NAN;
  const a = x < 0 ? -x : x;
  if (a === Infinity) return saturate ? E8M0_MAX_CODE : E8M0_NAN;
  if (a === 0) return saturate ? E8M0_MIN_CODE : E8M0_NAN;
  let k = exponentOf(a);
  if (k >= -1022) {
    // a = 2^k · (1 + frac), frac in [0, 1), exact.
    const frac = a * pow2(-k) - 1;
    if (roundMode === 'up') {
      if (frac > 0) k++;
    } else if (roundMode === 'nearest') {
      if (frac >= 0.5) k++;
    }
  }
  // Subnormal doubles keep k = -1023: far below 2^-127 whatever the mode.
  const code = k + 127;
  if (code > E8M0_MAX_CODE) return saturate ? E8M0_MAX_CODE : E8M0_NAN;
  if (code < E8M0_MIN_CODE) return saturate ? E8M0_MIN_CODE : E8M0_NAN;
  return code;
}

const TABLE = new Float64Array(256);
for (let c = 0; c < 255; c++) TABLE[c] = pow2(c - 127);
TABLE[E8M0_NAN] = NaN;

/** Exact value of float8e8m0 `code`: 2^(code − 127), NaN for 0xFF. */
export function decodeE8m0(code: number): number {
  return TABLE[code & 0xff] as number;
}

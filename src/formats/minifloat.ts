/**
 * Shared bit-level helpers for the narrow float formats (float16, bfloat16, float8*, float4e2m1).
 *
 * Every encoder rounds from the exact double value of its input, once, so an fp32, fp16 or fp64
 * source never suffers double rounding. All work is integer/power-of-two arithmetic on a shared
 * scratch buffer: no allocation per call.
 */

const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);
// Index of the 32-bit word holding sign and exponent (1 on little-endian hosts, 0 on big-endian).
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** 1 if the sign bit of `x` is set (also for −0 and negative NaNs), else 0. */
export function signBit(x: number): 0 | 1 {
  scratch[0] = x;
  return ((words[HI] as number) >>> 31) as 0 | 1;
}

/** Exact 2^k for integer k in [−1022, 1023], built from the exponent field (Math.pow is not guaranteed exact). */
export function pow2(k: number): number {
  words[HI] = ((k + 1023) << 20) >>> 0;
  words[1 - HI] = 0;
  return scratch[0] as number;
}

/**
 * floor(log2(a)) for a finite a > 0, read from the exponent field, so it is exact where
 * Math.log2 is not. Double subnormals (below 2^−1022) answer −1023: every caller treats them as
 * far below its smallest subnormal.
 */
export function exponentOf(a: number): number {
  scratch[0] = a;
  return (((words[HI] as number) >>> 20) & 0x7ff) - 1023;
}

/** Round half to even for q ≥ 0 (IEEE 754 roundTiesToEven). `q - floor(q)` is exact in binary64. */
export function roundHalfEvenNonNegative(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The magnitude code (sign bit not included) of the nearest value to `a` (finite, ≥ 0) in an
 * IEEE-754-style layout with `manBits` mantissa bits and exponent bias `bias`, ties to even.
 *
 * The result is not bounded above: a code beyond the format's largest finite code means overflow
 * and each format decides what that becomes (Inf, NaN, or saturation to max).
 *
 * Why the formula works: in a binade 2^e the quantum is 2^(e − manBits), in the subnormal range it
 * is fixed at 2^(emin − manBits). With r = round(a / quantum), a normal value's code is
 * ((e + bias) << manBits) + (r − 2^manBits) = ((e + bias − 1) << manBits) + r, and a subnormal's
 * code is r. When rounding carries (r = 2^(manBits+1)) the code moves to the next binade on its
 * own, and a subnormal that rounds up to 2^manBits becomes the smallest normal, as IEEE requires.
 */
export function roundToMagnitudeCode(a: number, manBits: number, bias: number): number {
  if (a === 0) return 0;
  const emin = 1 - bias;
  const e = exponentOf(a);
  if (e < emin - manBits - 2) return 0; // below half the smallest subnormal (and double subnormals)
  // Every format here tops out at e ≤ bias; far beyond that answer a code above any real one
  // (exponent field 2·bias + 4) so huge inputs cannot overflow the arithmetic below.
  if (e > bias + 2) return (2 * bias + 4) * 2 ** manBits;
  const quantumExp = (e < emin ? emin : e) - manBits;
  const r = roundHalfEvenNonNegative(a * pow2(-quantumExp));
  return e < emin ? r : (e + bias - 1) * 2 ** manBits + r;
}

/** Value of a magnitude code in the same layout (no NaN/Inf handling: callers check those codes first). */
export function magnitudeCodeValue(code: number, manBits: number, bias: number): number {
  const exp = code >>> manBits;
  const man = code & ((1 << manBits) - 1);
  if (exp === 0) return man * pow2(1 - bias - manBits);
  return (man + 2 ** manBits) * pow2(exp - bias - manBits);
}

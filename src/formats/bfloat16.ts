import { roundToMagnitudeCode, signBit } from './minifloat.js';

/**
 * bfloat16: the top 16 bits of an IEEE binary32 (1 sign, 8 exponent bias 127, 7 mantissa bits).
 * Encoding rounds the exact double to nearest, ties to even (not truncation), and overflows to
 * ±Inf; decoding is exact (shift into a binary32).
 */

const MAN_BITS = 7;
const BIAS = 127;
const INF = 0x7f80;
/** Canonical quiet NaN, as in the ONNX Cast FLOAT→BFLOAT16 conformance data. */
const QNAN = 0x7fc0;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function encodeBfloat16(x: number): number {
  const sign = signBit(x) << 15;
  if (x !== x) return sign | QNAN;
  const mag = roundToMagnitudeCode(Math.abs(x), MAN_BITS, BIAS);
  return sign | (mag >= INF ? INF : mag);
}

export function decodeBfloat16(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0] as number;
}

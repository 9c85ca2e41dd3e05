import { magnitudeCodeValue, roundToMagnitudeCode, signBit } from './minifloat.js';

/**
 * IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Held as its 16-bit pattern.
 * Encoding rounds the exact double to nearest, ties to even; beyond the largest finite value
 * (65504) it overflows to ±Inf as IEEE and ONNX Cast ("floating point: ±infinity if OOR") say.
 */

const MAN_BITS = 10;
const BIAS = 15;
const INF = 0x7c00;
/** Canonical quiet NaN (what ONNX conformance data and numpy produce for a positive NaN). */
const QNAN = 0x7e00;

export function encodeFloat16(x: number): number {
  const sign = signBit(x) << 15;
  if (x !== x) return sign | QNAN;
  const mag = roundToMagnitudeCode(Math.abs(x), MAN_BITS, BIAS); // Inf lands beyond INF too
  return sign | (mag >= INF ? INF : mag);
}

export function decodeFloat16(bits: number): number {
  const mag = bits & 0x7fff;
  const v = mag < INF ? magnitudeCodeValue(mag, MAN_BITS, BIAS) : mag === INF ? Infinity : NaN;
  return bits & 0x8000 ? -v : v;
}

let table32: Float32Array | undefined;
/** All 65536 decoded values as float32 (every binary16 value is exact in binary32); built once. */
export function float16Table(): Float32Array {
  if (!table32) {
    table32 = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) table32[b] = decodeFloat16(b);
  }
  return table32;
}

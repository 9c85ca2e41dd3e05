import { roundToMagnitudeCode, signBit } from './minifloat.js';

/**
 * float4e2m1 (OCP MX FP4; ONNX float4 spec page): 1 sign, 2 exponent (bias 1), 1 mantissa bit.
 * Magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; no Inf, no NaN; ±0. Codes are 0..15, unpacked.
 *
 * The spec's Cast table always saturates: |x| > 6 and ±Inf become ±6, NaN becomes +6; within
 * range, round to nearest even. There is no non-saturating mode (the Cast `saturate` attribute
 * applies to float8 only), so this encoder takes no such flag.
 * Note: ONNX's test_cast_*_to_FLOAT4E2M1 data (generated with ml_dtypes) encodes NaN as 0x8 (−0),
 * which contradicts the spec table; we follow the spec.
 */

const MAN_BITS = 1;
const BIAS = 1;
const MAX_MAG = 0x7;

export function encodeFloat4e2m1(x: number): number {
  if (x !== x) return MAX_MAG;
  const sign = signBit(x) << 3;
  const mag = roundToMagnitudeCode(Math.abs(x), MAN_BITS, BIAS);
  return sign | (mag > MAX_MAG ? MAX_MAG : mag);
}

const TABLE = new Float64Array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);

/** The 16 decoded values, indexed by code (the spec's table of representable values). */
export function float4e2m1Table(): Float64Array {
  return TABLE;
}

export function decodeFloat4e2m1(code: number): number {
  return TABLE[code & 0xf] as number;
}

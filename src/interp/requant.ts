import { roundHalfEven } from '../formats/rounding.js';
import { multiplyByQuantizedMultiplier, quantizeMultiplier } from '../quant/requantize.js';
import { allocData } from '../tensor/tensor.js';
import { clamp } from './quant-params.js';

/**
 * How QLinearMatMul / QLinearConv turn an int32 accumulator into an 8-bit code, given the real
 * multiplier M = s_x·s_w / s_y (formed in fp32 by the caller, as both ONNX Runtime and the ONNX
 * reference form it):
 *   'float32'     ONNX Runtime's CPU kernels (MLAS MlasRequantizeOutput): fp32(acc) · M in fp32,
 *                 rounded half to even, zero point added, saturated. The default: what `quantkit
 *                 run` is held to is ONNX Runtime's output, code for code.
 *   'float64'     the ONNX reference implementation (its outputs are the backend test data):
 *                 acc · M in float64 (NumPy promotes int32 × float32), rounded half to even.
 *   'fixed-point' gemmlowp / TFLite: M as an int32 m0 in [2^30, 2^31) and a shift, a saturating
 *                 rounding doubling high multiply and a rounding right shift (quant/requantize.ts).
 *                 Integer-only, so every runtime that follows it agrees; it is not what ONNX
 *                 Runtime computes (codes differ by one where acc · M lies near a tie).
 */
export const REQUANTIZATIONS = ['float32', 'float64', 'fixed-point'] as const;
export type Requantization = (typeof REQUANTIZATIONS)[number];

export function isRequantization(s: string): s is Requantization {
  return (REQUANTIZATIONS as readonly string[]).includes(s);
}

/**
 * Codes of `dtype` for accumulators `acc` (exact int32 values), element i taking multiplier
 * `multipliers[channelOf(i)]`, zero point `zp` and the type's saturation range [lo, hi].
 */
export function requantizeCodes(
  acc: Int32Array,
  multipliers: Float64Array,
  channelOf: (i: number) => number,
  zp: number,
  dtype: 'int8' | 'uint8',
  [lo, hi]: readonly [number, number],
  mode: Requantization,
): Int8Array | Uint8Array {
  const y = allocData(dtype, acc.length) as Int8Array | Uint8Array;
  if (mode === 'fixed-point') {
    const fixed = Array.from(multipliers, (m) => quantizeMultiplier(m));
    for (let i = 0; i < acc.length; i++) {
      const q = fixed[channelOf(i)] as { m0: number; shift: number };
      y[i] = clamp(multiplyByQuantizedMultiplier(acc[i] as number, q.m0, q.shift) + zp, lo, hi);
    }
    return y;
  }
  const single = mode === 'float32';
  for (let i = 0; i < acc.length; i++) {
    const m = multipliers[channelOf(i)] as number;
    const v = single ? Math.fround(Math.fround(acc[i] as number) * m) : (acc[i] as number) * m;
    y[i] = clamp(roundHalfEven(v) + zp, lo, hi);
  }
  return y;
}

import { QuantkitError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { makeTensor } from '../../tensor/tensor.js';
import type { OpContext, OpImpl } from '../op.js';
import { expectDType, requireInput } from '../op.js';
import { planMatMul } from '../matmul-shape.js';
import { roundToFloat, toFloat64 } from '../values.js';
import { integerRange } from './quantize-linear.js';
import { addSaturation, matmulInt32 } from './matmul-integer.js';
import { requantizeCodes } from '../requant.js';
import { kernelCodes, matmulSaturationError, saturates } from '../emulate.js';

/**
 * ONNX QLinearMatMul (opset 10/21), int8/uint8, per-tensor scales:
 *   C = (a − a_zp) × (b − b_zp) exactly (int32, the int8 GEMM kernel);
 *   multiplier = a_scale · b_scale / y_scale, each step rounded to the scales' type (fp32/fp16/bf16);
 *   y = saturate(round_half_even(C · multiplier) + y_zp), the product taken as ctx.requantize
 *   says (requant.ts): in fp32 as ONNX Runtime by default, in float64 as the ONNX reference.
 */
export const QLinearMatMul: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'a', ctx);
  const aScale = requireInput(inputs, 1, 'a_scale', ctx);
  const aZp = requireInput(inputs, 2, 'a_zero_point', ctx);
  const b = requireInput(inputs, 3, 'b', ctx);
  const bScale = requireInput(inputs, 4, 'b_scale', ctx);
  const bZp = requireInput(inputs, 5, 'b_zero_point', ctx);
  const yScale = requireInput(inputs, 6, 'y_scale', ctx);
  const yZp = requireInput(inputs, 7, 'y_zero_point', ctx);
  for (const [t, n] of [
    [a, 'a'],
    [b, 'b'],
    [yZp, 'y_zero_point'],
  ] as const)
    expectDType(t, ['int8', 'uint8'], n, ctx);
  const plan = planMatMul(a.dims, b.dims, ctx);
  const c = matmulInt32(a, aZp, b, bZp, plan, ctx);
  // ctx.emulate: the accumulator as the emulated kernel leaves it (emulate.ts), then requantized.
  if (a.dtype === 'uint8' && saturates(ctx.emulate, a.dtype, b.dtype))
    addSaturation(c, matmulSaturationError(kernelCodes(a), toFloat64(b), plan));
  const multiplier = Float64Array.of(requantMultiplier(aScale, bScale, yScale, ctx));
  const zp = scalarValue(yZp, 'y_zero_point', ctx);
  const dtype = yZp.dtype as 'int8' | 'uint8';
  const y = requantizeCodes(c, multiplier, () => 0, zp, dtype, integerRange(dtype), ctx.requantize ?? 'float32');
  return [makeTensor(dtype, plan.outDims, y)];
};

/** a_scale · b_scale / y_scale in the scales' own precision (per-tensor scales only). */
export function requantMultiplier(aScale: Tensor, bScale: Tensor, yScale: Tensor, ctx: OpContext): number {
  const p = aScale.dtype;
  const s = Float64Array.of(scalarValue(aScale, 'a_scale', ctx) * scalarValue(bScale, 'b_scale', ctx));
  roundToFloat(p, s);
  s[0] = (s[0] as number) / scalarValue(yScale, 'y_scale', ctx);
  return roundToFloat(p, s)[0] as number;
}

export function scalarValue(t: Tensor, name: string, ctx: OpContext): number {
  if (t.data.length !== 1) {
    throw new QuantkitError(
      'QK_UNSUPPORTED_QUANT_GRANULARITY',
      `${ctx.where}: '${name}' has ${t.data.length} elements; the reference interpreter runs per-tensor ${name} only here`,
      'use per-tensor scales and zero points',
    );
  }
  return toFloat64(t)[0] as number;
}

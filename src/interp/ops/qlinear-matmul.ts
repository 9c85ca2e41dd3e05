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
  const [a, aScale, aZp, b, bScale, bZp, yScale, yZp] = qlinearOperands(inputs, 'a', 'b', ctx);
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

/**
 * The eight inputs QLinearMatMul and QLinearConv share — a, a_scale, a_zero_point, b, b_scale,
 * b_zero_point, y_scale, y_zero_point, with a and b named as the op names them — all required, and
 * a, b and y_zero_point checked to be 8-bit codes.
 */
export function qlinearOperands(
  inputs: readonly (Tensor | undefined)[],
  a: string,
  b: string,
  ctx: OpContext,
): [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor] {
  const names = [a, `${a}_scale`, `${a}_zero_point`, b, `${b}_scale`, `${b}_zero_point`, 'y_scale', 'y_zero_point'];
  const t = names.map((n, i) => requireInput(inputs, i, n, ctx));
  for (const i of [0, 3, 7]) expectDType(t[i] as Tensor, ['int8', 'uint8'], names[i] as string, ctx);
  return t as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
}

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

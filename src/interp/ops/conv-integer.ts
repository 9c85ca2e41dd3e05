import { makeTensor } from '../../tensor/tensor.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ConvPlan } from '../conv-plan.js';
import { convolve, planConv } from '../conv-plan.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { toFloat64 } from '../values.js';
import { addInPlace, toInt32 } from './matmul-integer.js';
import { convSaturationError, kernelCodes, saturates } from '../emulate.js';

/** x − x_zero_point with a per-tensor zero point (ConvInteger/QLinearConv allow only that for x). */
export function offsetInput(x: Tensor, zp: Tensor | undefined, ctx: OpContext): Float64Array {
  const v = Float64Array.from(toFloat64(x));
  if (!zp) return v;
  if (zp.data.length !== 1) throw badShape(ctx, `x zero point must be a scalar, got [${zp.dims.join(', ')}]`);
  const z = toFloat64(zp)[0] as number;
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) - z;
  return v;
}

/** w − w_zero_point with a per-tensor or per-output-channel (length M) zero point. */
export function offsetWeight(w: Tensor, zp: Tensor | undefined, plan: ConvPlan, ctx: OpContext): Float64Array {
  const v = Float64Array.from(toFloat64(w));
  if (!zp) return v;
  const z = toFloat64(zp);
  if (z.length !== 1 && z.length !== plan.outChannels)
    throw badShape(
      ctx,
      `w zero point must be a scalar or have ${plan.outChannels} elements, got [${zp.dims.join(', ')}]`,
    );
  const perChannel = v.length / plan.outChannels;
  for (let i = 0; i < v.length; i++)
    v[i] = (v[i] as number) - (z[z.length === 1 ? 0 : Math.floor(i / perChannel)] as number);
  return v;
}

/** The emulated kernel's saturation error for x (codes, padding at its zero point) ⊛ w. */
export function convSaturationErrorOf(
  x: Tensor,
  xZp: Tensor | undefined,
  w: Tensor,
  plan: ConvPlan,
  order: 'hwc' | 'chw',
): Float64Array {
  const pad = xZp ? (kernelCodes(xZp)[0] as number) : x.dtype === 'int8' ? 128 : 0;
  return convSaturationError(kernelCodes(x), pad, toFloat64(w), plan, order);
}

/** ONNX ConvInteger (opset 10): int32 convolution of (x − x_zp) with (w − w_zp). */
export const ConvInteger: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'x', ctx);
  const w = requireInput(inputs, 1, 'w', ctx);
  expectDType(x, ['int8', 'uint8'], 'x', ctx);
  expectDType(w, ['int8', 'uint8'], 'w', ctx);
  const plan = planConv(x.dims, w.dims, ctx);
  const y = convolve(offsetInput(x, inputs[2], ctx), offsetWeight(w, inputs[3], plan, ctx), plan);
  // ORT's ConvInteger is an NCHW im2col + GEMM: K runs over (c, kh, kw).
  if (saturates(ctx.emulate, x.dtype, w.dtype)) addInPlace(y, convSaturationErrorOf(x, inputs[2], w, plan, 'chw'));
  return [makeTensor('int32', plan.outDims, toInt32(y))];
};

import { makeTensor } from '../../tensor/tensor.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ConvPlan } from '../conv-plan.js';
import { convolve, planConv } from '../conv-plan.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { toFloat64 } from '../values.js';
import { addSaturation, toInt32 } from './matmul-integer.js';
import { convSaturationError, kernelCodes, saturates } from '../emulate.js';
import { int8Conv, type Int8Codes } from '../kernels.js';

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

/** The plain loop convInt32 is held to: the reference convolution on exact offset values. */
export function convInt32Reference(
  x: Tensor,
  xZp: Tensor | undefined,
  w: Tensor,
  wZp: Tensor | undefined,
  plan: ConvPlan,
  ctx: OpContext,
): Int32Array {
  return toInt32(convolve(offsetInput(x, xZp, ctx), offsetWeight(w, wZp, plan, ctx), plan));
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

/**
 * The int32 convolution Σ (x − x_zp)(w − w_zp) over each group's channels and window: kernels/'
 * integer convolution (im2col and the int8 GEMM, zero points folded), through kernels.ts.
 * Output [N, M, out spatial...].
 */
export function convInt32(
  x: Tensor,
  xZp: Tensor | undefined,
  w: Tensor,
  wZp: Tensor | undefined,
  plan: ConvPlan,
  ctx: OpContext,
): Int32Array {
  const { outChannels, inSpatial, kernel, strides, dilations, padsBegin, outSpatial } = plan;
  if (xZp && xZp.data.length !== 1) throw badShape(ctx, `x zero point must be a scalar, got [${xZp.dims.join(', ')}]`);
  const wz = wZp ? toFloat64(wZp) : new Float64Array(1);
  if (wz.length !== 1 && wz.length !== outChannels)
    throw badShape(ctx, `w zero point must be a scalar or have ${outChannels} elements, got [${wZp?.dims.join(', ')}]`);
  // auto_pad resolved by the plan: the end pads that give its output size.
  const padsEnd = inSpatial.map(
    (d, i) =>
      ((outSpatial[i] as number) - 1) * (strides[i] as number) +
      ((kernel[i] as number) - 1) * (dilations[i] as number) +
      1 -
      d -
      (padsBegin[i] as number),
  );
  return int8Conv(
    {
      x: x.data as Int8Codes,
      xDims: x.dims,
      xZero: xZp ? (toFloat64(xZp)[0] as number) : 0,
      w: w.data as Int8Codes,
      wDims: w.dims,
      wZero: wz.length === 1 ? (wz[0] as number) : Array.from(wz),
      group: plan.group,
      strides,
      dilations,
      pads: [...padsBegin, ...padsEnd.map((e) => Math.max(0, e))],
    },
    ctx.threads,
  );
}

/** ONNX ConvInteger (opset 10): int32 convolution of (x − x_zp) with (w − w_zp). */
export const ConvInteger: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'x', ctx);
  const w = requireInput(inputs, 1, 'w', ctx);
  expectDType(x, ['int8', 'uint8'], 'x', ctx);
  expectDType(w, ['int8', 'uint8'], 'w', ctx);
  const plan = planConv(x.dims, w.dims, ctx);
  const y = convInt32(x, inputs[2], w, inputs[3], plan, ctx);
  // ORT's ConvInteger is an NCHW im2col + GEMM: K runs over (c, kh, kw).
  if (saturates(ctx.emulate, x.dtype, w.dtype)) addSaturation(y, convSaturationErrorOf(x, inputs[2], w, plan, 'chw'));
  return [makeTensor('int32', plan.outDims, y)];
};

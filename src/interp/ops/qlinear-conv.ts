import { makeTensor } from '../../tensor/tensor.js';
import { planConv } from '../conv-plan.js';
import type { OpImpl } from '../op.js';
import { badShape } from '../op.js';
import { toFloat64 } from '../values.js';
import { convInt32, convSaturationErrorOf } from './conv-integer.js';
import { addSaturation } from './matmul-integer.js';
import { saturates } from '../emulate.js';
import { integerRange } from './quantize-linear.js';
import { qlinearOperands, scalarValue } from './qlinear-matmul.js';
import { requantizeCodes } from '../requant.js';

/**
 * ONNX QLinearConv (opset 10): acc = conv(x − x_zp, w − w_zp) + B in int32 (B quantized with scale
 * x_scale·w_scale), then y = saturate(round_half_even(acc · M[m]) + y_zp) with the multiplier
 * M[m] = x_scale · w_scale[m] / y_scale formed in fp32 and applied as ctx.requantize says
 * (requant.ts; by default in fp32, as ONNX Runtime's CPU kernel).
 */
export const QLinearConv: OpImpl = (inputs, ctx) => {
  const [x, xScale, xZp, w, wScale, wZp, yScale, yZp] = qlinearOperands(inputs, 'x', 'w', ctx);
  const bias = inputs[8];
  const plan = planConv(x.dims, w.dims, ctx);
  const acc = convInt32(x, xZp, w, wZp, plan, ctx);
  // ORT runs QLinearConv on x86 in NHWC: K runs over (kh, kw, c).
  if (saturates(ctx.emulate, x.dtype, w.dtype)) addSaturation(acc, convSaturationErrorOf(x, xZp, w, plan, 'hwc'));
  const { outChannels: M } = plan;
  const ws = toFloat64(wScale);
  if (ws.length !== 1 && ws.length !== M) throw badShape(ctx, `w_scale must be a scalar or have ${M} elements`);
  const b = bias ? toFloat64(bias) : undefined;
  if (b && b.length !== M) throw badShape(ctx, `bias must have ${M} elements`);
  const perChannel = acc.length / (plan.batch * M);
  const channelOf = (i: number) => Math.floor(i / perChannel) % M;
  // The bias joins the int32 accumulator (wrapping as int32 addition does) before requantization.
  if (b) for (let i = 0; i < acc.length; i++) acc[i] = ((acc[i] as number) + (b[channelOf(i)] as number)) | 0;
  const xs = scalarValue(xScale, 'x_scale', ctx);
  const ys = scalarValue(yScale, 'y_scale', ctx);
  const zp = scalarValue(yZp, 'y_zero_point', ctx);
  const multipliers = new Float64Array(M);
  for (let m = 0; m < M; m++)
    multipliers[m] = Math.fround(Math.fround(xs * (ws[ws.length === 1 ? 0 : m] as number)) / ys);
  const dtype = yZp.dtype as 'int8' | 'uint8';
  const y = requantizeCodes(acc, multipliers, channelOf, zp, dtype, integerRange(dtype), ctx.requantize ?? 'float32');
  return [makeTensor(dtype, plan.outDims, y)];
};

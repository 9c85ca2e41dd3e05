import { allocData, makeTensor } from '../../tensor/tensor.js';
import { convolve, planConv } from '../conv-plan.js';
import type { OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { roundHalfEven } from '../../formats/rounding.js';
import { clamp } from '../quant-params.js';
import { toFloat64 } from '../values.js';
import { convSaturationErrorOf, offsetInput, offsetWeight } from './conv-integer.js';
import { addInPlace } from './matmul-integer.js';
import { saturates } from '../emulate.js';
import { integerRange } from './quantize-linear.js';
import { scalarValue } from './qlinear-matmul.js';

/**
 * ONNX QLinearConv (opset 10): acc = conv(x − x_zp, w − w_zp) + B (int32, B quantized with scale
 * x_scale·w_scale), then y = saturate(round_half_even(acc · x_scale · w_scale[m] / y_scale) + y_zp).
 * The multiplier is formed in float32 (the scales' type) and applied in float64.
 */
export const QLinearConv: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'x', ctx);
  const xScale = requireInput(inputs, 1, 'x_scale', ctx);
  const xZp = requireInput(inputs, 2, 'x_zero_point', ctx);
  const w = requireInput(inputs, 3, 'w', ctx);
  const wScale = requireInput(inputs, 4, 'w_scale', ctx);
  const wZp = requireInput(inputs, 5, 'w_zero_point', ctx);
  const yScale = requireInput(inputs, 6, 'y_scale', ctx);
  const yZp = requireInput(inputs, 7, 'y_zero_point', ctx);
  const bias = inputs[8];
  for (const [t, n] of [
    [x, 'x'],
    [w, 'w'],
    [yZp, 'y_zero_point'],
  ] as const)
    expectDType(t, ['int8', 'uint8'], n, ctx);
  const plan = planConv(x.dims, w.dims, ctx);
  const acc = convolve(offsetInput(x, xZp, ctx), offsetWeight(w, wZp, plan, ctx), plan);
  // ORT runs QLinearConv on x86 in NHWC: K runs over (kh, kw, c).
  if (saturates(ctx.emulate, x.dtype, w.dtype)) addInPlace(acc, convSaturationErrorOf(x, xZp, w, plan, 'hwc'));
  const { outChannels: M } = plan;
  const ws = toFloat64(wScale);
  if (ws.length !== 1 && ws.length !== M) throw badShape(ctx, `w_scale must be a scalar or have ${M} elements`);
  const b = bias ? toFloat64(bias) : undefined;
  if (b && b.length !== M) throw badShape(ctx, `bias must have ${M} elements`);
  const xs = scalarValue(xScale, 'x_scale', ctx);
  const ys = scalarValue(yScale, 'y_scale', ctx);
  const zp = scalarValue(yZp, 'y_zero_point', ctx);
  const multipliers = new Float64Array(M);
  for (let m = 0; m < M; m++)
    multipliers[m] = Math.fround(Math.fround(xs * (ws[ws.length === 1 ? 0 : m] as number)) / ys);
  const [lo, hi] = integerRange(yZp.dtype);
  const perChannel = acc.length / (plan.batch * M);
  const y = allocData(yZp.dtype, acc.length) as Int8Array | Uint8Array;
  for (let i = 0; i < acc.length; i++) {
    const m = Math.floor(i / perChannel) % M;
    const sum = (acc[i] as number) + (b ? (b[m] as number) : 0);
    y[i] = clamp(roundHalfEven(sum * (multipliers[m] as number)) + zp, lo, hi);
  }
  return [makeTensor(yZp.dtype, plan.outDims, y)];
};

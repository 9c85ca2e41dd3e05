import { makeTensor } from '../../tensor/tensor.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ConvPlan } from '../conv-plan.js';
import { convolve, planConv } from '../conv-plan.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { toFloat64 } from '../values.js';
import { addSaturation, toInt32 } from './matmul-integer.js';
import { convSaturationError, kernelCodes, saturates } from '../emulate.js';
import { inputOffset } from '../conv-plan.js';
import { int8Gemm, type Int8Codes } from '../kernels.js';
import { allocData } from '../../tensor/tensor.js';

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
 * The int32 convolution Σ (x − x_zp)(w − w_zp) over each group's channels and window, as im2col
 * and the int8 GEMM kernel (kernels.ts) with the zero points folded: per image and group,
 * A = the patches [out positions, C/group·kernel] (padding holds x_zp, so it contributes 0) with
 * the one x zero point, B = the group's weights transposed [C/group·kernel, M/group] with one
 * zero point per output channel. Output [N, M, out spatial...].
 */
export function convInt32(
  x: Tensor,
  xZp: Tensor | undefined,
  w: Tensor,
  wZp: Tensor | undefined,
  plan: ConvPlan,
  ctx: OpContext,
): Int32Array {
  const { batch, inChannels, outChannels, group, inSpatial, kernel, outSpatial } = plan;
  if (xZp && xZp.data.length !== 1) throw badShape(ctx, `x zero point must be a scalar, got [${xZp.dims.join(', ')}]`);
  const xz = xZp ? (toFloat64(xZp)[0] as number) : 0;
  const wz = wZp ? toFloat64(wZp) : new Float64Array(1);
  if (wz.length !== 1 && wz.length !== outChannels)
    throw badShape(ctx, `w zero point must be a scalar or have ${outChannels} elements, got [${wZp?.dims.join(', ')}]`);
  const cPerGroup = inChannels / group;
  const mPerGroup = outChannels / group;
  const inSize = inSpatial.reduce((p, d) => p * d, 1);
  const kSize = kernel.reduce((p, d) => p * d, 1);
  const outSize = outSpatial.reduce((p, d) => p * d, 1);
  const kc = cPerGroup * kSize;
  const xd = x.data as Int8Codes;
  const wd = w.data as Int8Codes;
  const y = new Int32Array(batch * outChannels * outSize);
  const patches = allocData(x.dtype, outSize * kc) as Int8Codes;
  const offsets = patchOffsets(plan, kSize, outSize);
  for (let g = 0; g < group; g++) {
    const b = allocData(w.dtype, kc * mPerGroup) as Int8Codes;
    for (let mg = 0; mg < mPerGroup; mg++)
      for (let t = 0; t < kc; t++) b[t * mPerGroup + mg] = wd[(g * mPerGroup + mg) * kc + t] as number;
    const bZero = wz.length === 1 ? (wz[0] as number) : wz.subarray(g * mPerGroup, (g + 1) * mPerGroup);
    for (let n = 0; n < batch; n++) {
      for (let p = 0; p < outSize; p++) {
        for (let cg = 0; cg < cPerGroup; cg++) {
          const xBase = (n * inChannels + g * cPerGroup + cg) * inSize;
          for (let k = 0; k < kSize; k++) {
            const off = offsets[p * kSize + k] as number;
            patches[p * kc + cg * kSize + k] = off >= 0 ? (xd[xBase + off] as number) : xz;
          }
        }
      }
      const c = int8Gemm(patches, outSize, kc, xz, b, mPerGroup, bZero);
      for (let mg = 0; mg < mPerGroup; mg++) {
        const yBase = (n * outChannels + g * mPerGroup + mg) * outSize;
        for (let p = 0; p < outSize; p++) y[yBase + p] = c[p * mPerGroup + mg] as number;
      }
    }
  }
  return y;
}

/** For each (out position, kernel position), the input offset within a channel, or −1 in the padding. */
function patchOffsets(plan: ConvPlan, kSize: number, outSize: number): Int32Array {
  const n = plan.inSpatial.length;
  const out = new Int32Array(outSize * kSize);
  const o = new Int32Array(n);
  const k = new Int32Array(n);
  for (let p = 0; p < outSize; p++) {
    unravelInto(p, plan.outSpatial, o);
    for (let j = 0; j < kSize; j++) {
      unravelInto(j, plan.kernel, k);
      out[p * kSize + j] = inputOffset(plan, o, k);
    }
  }
  return out;
}

function unravelInto(flat: number, dims: readonly number[], out: Int32Array): void {
  for (let ax = dims.length - 1; ax >= 0; ax--) {
    const d = dims[ax] as number;
    out[ax] = flat % d;
    flat = Math.floor(flat / d);
  }
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

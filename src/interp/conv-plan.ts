import { unravel, type ConvInt8Geometry } from '../kernels/conv-int8.ref.js';
import type { OpContext } from './op.js';
import { badShape } from './op.js';

/**
 * Geometry of an N-D convolution (ONNX Conv / ConvInteger / QLinearConv share it): x is
 * [N, C, D1..Dn], w is [M, C/group, k1..kn]; pads/auto_pad/strides/dilations/group as in the spec.
 * The same sizes kernels/' integer convolution iterates over.
 */
export type ConvPlan = ConvInt8Geometry;

export function planConv(xDims: readonly number[], wDims: readonly number[], ctx: OpContext): ConvPlan {
  const { attrs } = ctx;
  if (xDims.length < 3 || wDims.length !== xDims.length) {
    throw badShape(
      ctx,
      `input [${xDims.join(', ')}] and weight [${wDims.join(', ')}] must both be [N, C, spatial...] of equal rank ≥ 3`,
    );
  }
  const nSpatial = xDims.length - 2;
  const group = attrs.int('group', 1);
  const inChannels = xDims[1] as number;
  const outChannels = wDims[0] as number;
  if (group < 1 || inChannels !== (wDims[1] as number) * group || outChannels % group !== 0) {
    throw badShape(ctx, `channels do not fit group=${group}: input has ${inChannels}, weight is [${wDims.join(', ')}]`);
  }
  const inSpatial = xDims.slice(2);
  const kernel = attrs.ints('kernel_shape') ?? wDims.slice(2);
  const strides = attrs.ints('strides') ?? new Array<number>(nSpatial).fill(1);
  const dilations = attrs.ints('dilations') ?? new Array<number>(nSpatial).fill(1);
  if (kernel.length !== nSpatial || strides.length !== nSpatial || dilations.length !== nSpatial) {
    throw badShape(ctx, `kernel_shape/strides/dilations must have ${nSpatial} entries`);
  }
  const autoPad = attrs.string('auto_pad', 'NOTSET');
  const pads = attrs.ints('pads') ?? new Array<number>(2 * nSpatial).fill(0);
  if (pads.length !== 2 * nSpatial) throw badShape(ctx, `pads must have ${2 * nSpatial} entries`);
  const padsBegin: number[] = [];
  const outSpatial: number[] = [];
  for (let i = 0; i < nSpatial; i++) {
    const inSize = inSpatial[i] as number;
    const stride = strides[i] as number;
    const span = ((kernel[i] as number) - 1) * (dilations[i] as number) + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      // ONNX auto_pad: output = ceil(in / stride); odd total padding goes at the end for
      // SAME_UPPER and at the beginning for SAME_LOWER.
      const out = Math.ceil(inSize / stride);
      const total = Math.max(0, (out - 1) * stride + span - inSize);
      padsBegin.push(autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2));
      outSpatial.push(out);
    } else if (autoPad === 'VALID') {
      padsBegin.push(0);
      outSpatial.push(Math.floor((inSize - span) / stride) + 1);
    } else if (autoPad === 'NOTSET') {
      const begin = pads[i] as number;
      const end = pads[i + nSpatial] as number;
      padsBegin.push(begin);
      outSpatial.push(Math.floor((inSize + begin + end - span) / stride) + 1);
    } else {
      throw badShape(ctx, `auto_pad '${autoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`);
    }
  }
  if (outSpatial.some((d) => d < 1))
    throw badShape(ctx, `the kernel does not fit the input: output spatial size [${outSpatial.join(', ')}]`);
  const batch = xDims[0] as number;
  return {
    batch,
    inChannels,
    outChannels,
    group,
    inSpatial,
    kernel,
    strides,
    dilations,
    padsBegin,
    outSpatial,
    outDims: [batch, outChannels, ...outSpatial],
  };
}

/**
 * Offset within one input channel's spatial block of the element that output position `outIdx`
 * reads at kernel position `kIdx` (o·s + k·d − pad per axis), or −1 where it falls in the padding.
 */
export function inputOffset(plan: ConvPlan, outIdx: Int32Array, kIdx: Int32Array): number {
  const { inSpatial, strides, dilations, padsBegin } = plan;
  let off = 0;
  for (let ax = 0; ax < inSpatial.length; ax++) {
    const pos =
      (outIdx[ax] as number) * (strides[ax] as number) +
      (kIdx[ax] as number) * (dilations[ax] as number) -
      (padsBegin[ax] as number);
    const size = inSpatial[ax] as number;
    if (pos < 0 || pos >= size) return -1;
    off = off * size + pos;
  }
  return off;
}

/** Channels per group (in and out) and the element counts of one input, kernel and output plane. */
export function convSizes(plan: ConvPlan): {
  cPerGroup: number;
  mPerGroup: number;
  inSize: number;
  kSize: number;
  outSize: number;
} {
  const count = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
  return {
    cPerGroup: plan.inChannels / plan.group,
    mPerGroup: plan.outChannels / plan.group,
    inSize: count(plan.inSpatial),
    kSize: count(plan.kernel),
    outSize: count(plan.outSpatial),
  };
}

/**
 * The plain convolution loop on exact values: y[n, m, o...] = Σ x[n, c, o·s + k·d − pad] · w[m, c, k]
 * over the group's channels and the kernel window, padding reading as zero. Accumulates in float64,
 * which is exact for the integer ops (|x|,|w| ≤ 255, far below 2^53) and rounds once for float ones.
 * `x` and `w` are already offset by their zero points where that applies.
 */
export function convolve(x: Float64Array, w: Float64Array, plan: ConvPlan): Float64Array {
  const { batch, inChannels, outChannels, inSpatial, kernel, outSpatial } = plan;
  const nSpatial = inSpatial.length;
  const { cPerGroup, mPerGroup, inSize, kSize, outSize } = convSizes(plan);
  const y = new Float64Array(batch * outChannels * outSize);
  const outIdx = new Int32Array(nSpatial);
  const kIdx = new Int32Array(nSpatial);
  for (let n = 0; n < batch; n++) {
    for (let m = 0; m < outChannels; m++) {
      const g = Math.floor(m / mPerGroup);
      for (let o = 0; o < outSize; o++) {
        unravel(o, outSpatial, outIdx);
        let acc = 0;
        for (let cg = 0; cg < cPerGroup; cg++) {
          const c = g * cPerGroup + cg;
          const xBase = (n * inChannels + c) * inSize;
          const wBase = (m * cPerGroup + cg) * kSize;
          for (let k = 0; k < kSize; k++) {
            unravel(k, kernel, kIdx);
            const xOff = inputOffset(plan, outIdx, kIdx);
            if (xOff >= 0) acc += (x[xBase + xOff] as number) * (w[wBase + k] as number);
          }
        }
        y[(n * outChannels + m) * outSize + o] = acc;
      }
    }
  }
  return y;
}

import type { Tensor } from '../../tensor/tensor.js';
import { elementCount, makeTensor } from '../../tensor/tensor.js';
import { broadcastIndex, normalizeAxis } from '../broadcast.js';
import type { OpImpl } from '../op.js';
import { badShape, requireInput } from '../op.js';
import { encodeFloat, floatInput } from '../values.js';

/**
 * Softmax: exp(x − max) / Σ exp(x − max) over the normalized axis, in float64, rounded once.
 * Opset 13+: along `axis` (default −1). Before 13: x is taken as 2-D at `axis` (default 1) and
 * each row of the flattened trailing dims is normalized.
 */
export const Softmax: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'input', ctx);
  const v = floatInput(x, 'input', ctx);
  const rank = x.dims.length;
  const legacy = ctx.opset > 0 && ctx.opset < 13;
  const axis = normalizeAxis(ctx.attrs.int('axis', legacy ? 1 : -1), Math.max(rank, 1), ctx);
  // Softmax over `len` elements `stride` apart, for every (outer, inner) position.
  const len = legacy ? elementCount(x.dims.slice(axis)) : (x.dims[axis] ?? 1);
  const stride = legacy ? 1 : elementCount(x.dims.slice(axis + 1));
  const outer = elementCount(x.dims.slice(0, axis));
  const y = new Float64Array(v.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < stride; i++) {
      const base = o * len * stride + i;
      let max = -Infinity;
      for (let k = 0; k < len; k++) max = Math.max(max, v[base + k * stride] as number);
      let sum = 0;
      for (let k = 0; k < len; k++) {
        const e = Math.exp((v[base + k * stride] as number) - max);
        y[base + k * stride] = e;
        sum += e;
      }
      for (let k = 0; k < len; k++) y[base + k * stride] = (y[base + k * stride] as number) / sum;
    }
  }
  return [makeTensor(x.dtype, x.dims, encodeFloat(x.dtype, y))];
};

/**
 * LayerNormalization (opset 17): over the trailing axes from `axis` (default −1),
 * y = (x − mean) / √(var + epsilon) · Scale + B with the biased variance, in float64 and rounded
 * once; Scale and B broadcast to the normalized shape. Optional outputs Mean and InvStdDev have
 * x's dims with the normalized axes set to 1 (float32, stash_type 1).
 */
export const LayerNormalization: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  const scale = requireInput(inputs, 1, 'Scale', ctx);
  const bias = inputs[2];
  const v = floatInput(x, 'X', ctx);
  const rank = x.dims.length;
  const axis = normalizeAxis(ctx.attrs.int('axis', -1), rank, ctx);
  const eps = ctx.attrs.float('epsilon', 1e-5);
  const normDims = x.dims.slice(axis);
  const len = elementCount(normDims);
  const outer = elementCount(x.dims.slice(0, axis));
  const fits = (t: Tensor) => t.dims.length <= normDims.length;
  if (!fits(scale) || (bias && !fits(bias)))
    throw badShape(ctx, `Scale/B must broadcast to the normalized shape [${normDims.join(', ')}]`);
  const s = floatInput(scale, 'Scale', ctx);
  const sIdx = broadcastIndex(scale.dims, normDims);
  const b = bias ? floatInput(bias, 'B', ctx) : undefined;
  const bIdx = bias ? broadcastIndex(bias.dims, normDims) : undefined;
  const y = new Float64Array(v.length);
  const means = new Float64Array(outer);
  const invStd = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    const base = o * len;
    let sum = 0;
    for (let k = 0; k < len; k++) sum += v[base + k] as number;
    const mean = sum / len;
    let sq = 0;
    for (let k = 0; k < len; k++) sq += ((v[base + k] as number) - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / len + eps);
    means[o] = mean;
    invStd[o] = inv;
    for (let k = 0; k < len; k++) {
      let r = ((v[base + k] as number) - mean) * inv * (s[sIdx[k] as number] as number);
      if (b && bIdx) r += b[bIdx[k] as number] as number;
      y[base + k] = r;
    }
  }
  const statDims = x.dims.map((d, i) => (i < axis ? d : 1));
  return [
    makeTensor(x.dtype, x.dims, encodeFloat(x.dtype, y)),
    makeTensor('float32', statDims, Float32Array.from(means)),
    makeTensor('float32', statDims, Float32Array.from(invStd)),
  ];
};

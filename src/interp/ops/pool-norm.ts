import { unravel } from '../../kernels/conv-int8.ref.js';
import type { OpImpl } from '../op.js';
import { badShape, requireInput } from '../op.js';
import { makeTensor } from '../../tensor/tensor.js';
import { encodeFloat, toFloat64 } from '../values.js';

/**
 * MaxPool over N-D spatial axes of [N, C, D1..Dn] (pads, strides, dilations, ceil_mode; padding
 * never wins the max, as in the spec). The optional Indices output is not produced.
 */
export const MaxPool: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  if (x.dims.length < 3) throw badShape(ctx, `input [${x.dims.join(', ')}] must be [N, C, spatial...]`);
  const nSpatial = x.dims.length - 2;
  const kernel = ctx.attrs.ints('kernel_shape');
  if (!kernel || kernel.length !== nSpatial) throw badShape(ctx, `kernel_shape must have ${nSpatial} entries`);
  const strides = ctx.attrs.ints('strides') ?? new Array<number>(nSpatial).fill(1);
  const dilations = ctx.attrs.ints('dilations') ?? new Array<number>(nSpatial).fill(1);
  const pads = ctx.attrs.ints('pads') ?? new Array<number>(2 * nSpatial).fill(0);
  const ceil = ctx.attrs.int('ceil_mode', 0) !== 0;
  if (ctx.attrs.string('auto_pad', 'NOTSET') !== 'NOTSET')
    throw badShape(ctx, 'auto_pad other than NOTSET is not supported by the reference MaxPool');
  const inSpatial = x.dims.slice(2);
  const outSpatial = inSpatial.map((size, i) => {
    const span = ((kernel[i] as number) - 1) * (dilations[i] as number) + 1;
    const total = size + (pads[i] as number) + (pads[i + nSpatial] as number) - span;
    const round = ceil ? Math.ceil : Math.floor;
    let out = round(total / (strides[i] as number)) + 1;
    // ceil_mode must not start a window entirely in the end padding.
    if (ceil && (out - 1) * (strides[i] as number) >= size + (pads[i] as number)) out--;
    return out;
  });
  const [batch, channels] = x.dims as [number, number];
  const v = toFloat64(x);
  const inSize = inSpatial.reduce((p, d) => p * d, 1);
  const outSize = outSpatial.reduce((p, d) => p * d, 1);
  const kSize = kernel.reduce((p, d) => p * d, 1);
  const y = new Float64Array(batch * channels * outSize);
  const o = new Int32Array(nSpatial);
  const k = new Int32Array(nSpatial);
  for (let nc = 0; nc < batch * channels; nc++) {
    for (let flat = 0; flat < outSize; flat++) {
      unravel(flat, outSpatial, o);
      let best = -Infinity;
      for (let kf = 0; kf < kSize; kf++) {
        unravel(kf, kernel, k);
        let off = 0;
        let inside = true;
        for (let ax = 0; ax < nSpatial; ax++) {
          const pos =
            (o[ax] as number) * (strides[ax] as number) +
            (k[ax] as number) * (dilations[ax] as number) -
            (pads[ax] as number);
          if (pos < 0 || pos >= (inSpatial[ax] as number)) {
            inside = false;
            break;
          }
          off = off * (inSpatial[ax] as number) + pos;
        }
        if (inside) {
          const val = v[nc * inSize + off] as number;
          if (val > best || Number.isNaN(val)) best = val;
        }
      }
      y[nc * outSize + flat] = best;
    }
  }
  return [makeTensor(x.dtype, [batch, channels, ...outSpatial], encodeFloat(x.dtype, y))];
};

/** BatchNormalization in inference mode: y = scale · (x − mean) / sqrt(var + epsilon) + B, per channel (axis 1). */
export const BatchNormalization: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) =>
    toFloat64(requireInput(inputs, i, ['scale', 'B', 'input_mean', 'input_var'][i - 1] as string, ctx)),
  );
  if (ctx.attrs.int('training_mode', 0) !== 0)
    throw badShape(ctx, 'training_mode=1 is not supported by the reference interpreter');
  const eps = ctx.attrs.float('epsilon', 1e-5);
  const channels = x.dims[1] ?? 1;
  const inner = x.dims.slice(2).reduce((p, d) => p * d, 1);
  const v = toFloat64(x);
  const y = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const c = Math.floor(i / inner) % channels;
    // Rounded like fp32 math would not be; the reference works on exact values and rounds once.
    y[i] =
      (((scale as Float64Array)[c] as number) * ((v[i] as number) - ((mean as Float64Array)[c] as number))) /
        Math.sqrt(((variance as Float64Array)[c] as number) + eps) +
      ((bias as Float64Array)[c] as number);
  }
  return [makeTensor(x.dtype, x.dims, encodeFloat(x.dtype, y))];
};

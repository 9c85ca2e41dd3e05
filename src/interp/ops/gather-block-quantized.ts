import { QuantkitError } from '../../errors.js';
import { elementCount, makeTensor } from '../../tensor/tensor.js';
import { normalizeAxis, stridesOf } from '../broadcast.js';
import type { OpImpl } from '../op.js';
import { badShape, opContext, requireInput } from '../op.js';
import { encodeFloat, toFloat64 } from '../values.js';
import { Gather } from './indexing.js';

/**
 * com.microsoft GatherBlockQuantized: Gather (along gather_axis) of a table dequantized in blocks
 * of block_size along quantize_axis: value = (code − zero point) · scale, in the scales' type.
 * uint8 data packs 8/bits codes a byte along the last axis (which must be quantize_axis), lowest
 * bits first, zero points packed the same way and 2^(bits−1) when absent; int4/uint4 data holds
 * one code an element, zero points 0 when absent. The whole table is dequantized (a reference,
 * not a fast path).
 */
export const GatherBlockQuantized: OpImpl = (inputs, ctx) => {
  const data = requireInput(inputs, 0, 'data', ctx);
  const indices = requireInput(inputs, 1, 'indices', ctx);
  const scales = requireInput(inputs, 2, 'scales', ctx);
  const zeroPoints = inputs[3];
  const bits = ctx.attrs.int('bits', 4);
  const bs = ctx.attrs.int('block_size', 128);
  const rank = data.dims.length;
  const qAxis = normalizeAxis(ctx.attrs.int('quantize_axis', 1), rank, ctx, 'quantize_axis');
  const packedForm = data.dtype === 'uint8';
  if (!packedForm && data.dtype !== 'int4' && data.dtype !== 'uint4')
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: data has type ${data.dtype}`,
      'GatherBlockQuantized takes uint8 (packed), int4 or uint4 data',
    );
  if (packedForm && ((bits !== 4 && bits !== 8) || qAxis !== rank - 1))
    throw badShape(ctx, `uint8 data needs bits 4 or 8 and quantize_axis = the last axis (bits ${bits}, axis ${qAxis})`);
  const perByte = packedForm ? 8 / bits : 1;
  const dims = data.dims.map((d, i) => (i === rank - 1 ? d * perByte : d));
  const count = elementCount(dims);
  const axisLen = dims[qAxis] as number;
  const blocks = Math.ceil(axisLen / bs);
  const sDims = dims.map((d, i) => (i === qAxis ? blocks : d));
  if (scales.dims.length !== rank || scales.dims.some((d, i) => d !== sDims[i]))
    throw badShape(ctx, `scales must be [${sDims.join(', ')}], got [${scales.dims.join(', ')}]`);
  const s = toFloat64(scales);
  const raw = toFloat64(data);
  const zRaw = zeroPoints ? toFloat64(zeroPoints) : undefined;
  if (!zeroPoints && data.dtype === 'uint4')
    throw badShape(ctx, 'uint4 data needs zero_points (the contrib op leaves their default to the type)');
  const code = (flat: number): number => {
    if (!packedForm) return raw[flat] as number;
    return ((raw[Math.floor(flat / perByte)] as number) >> ((flat % perByte) * bits)) & ((1 << bits) - 1);
  };
  const zpOf = (p: number): number => {
    if (!zRaw) return packedForm ? 1 << (bits - 1) : 0;
    if (!packedForm) return zRaw[p] as number;
    // Zero points [.., ⌈blocks·bits/8⌉] packed per row like the data.
    const row = Math.floor(p / blocks);
    const blk = p % blocks;
    const zRow = Math.ceil(blocks / perByte);
    return ((zRaw[row * zRow + Math.floor(blk / perByte)] as number) >> ((blk % perByte) * bits)) & ((1 << bits) - 1);
  };
  const inner = stridesOf(dims)[qAxis] as number;
  const y = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const a = Math.floor(i / inner) % axisLen;
    const outer = Math.floor(i / (inner * axisLen));
    const p = (outer * blocks + Math.floor(a / bs)) * inner + (i % inner);
    y[i] = (code(i) - zpOf(p)) * (s[p] as number);
  }
  const table = makeTensor(scales.dtype, dims, encodeFloat(scales.dtype, y));
  return Gather([table, indices], { ...opContext({ axis: ctx.attrs.int('gather_axis', 0) }, ctx.opset, ctx.where) });
};

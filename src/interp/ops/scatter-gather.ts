import { QuantkitError } from '../../errors.js';
import type { Tensor, TensorData } from '../../tensor/tensor.js';
import { allocData, elementCount, makeTensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex, normalizeAxis, stridesOf } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, requireInput } from '../op.js';

/*
 * The index ops our weight encodings use to rebuild a weight at run time: k-means codebooks
 * (BitShift to unpack the indices, GatherElements for per-channel codebooks) and sparse
 * outliers (ScatterND into a zero matrix). Values are moved, never computed, so the results
 * are exact in every type.
 */

type Slots = { [i: number]: unknown };
const slots = (d: TensorData) => d as unknown as Slots;

function indexValues(t: Tensor, ctx: OpContext): number[] {
  if (t.dtype !== 'int64' && t.dtype !== 'int32')
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: 'indices' has type ${t.dtype}`,
      "'indices' must be an int32 or int64 tensor",
    );
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

function inRange(i: number, len: number, ctx: OpContext): number {
  if (i < -len || i >= len) throw badShape(ctx, `index ${i} is out of range for an axis of ${len}`);
  return i < 0 ? i + len : i;
}

const UNSIGNED_BITS: Partial<Record<Tensor['dtype'], number>> = { uint8: 8, uint16: 16, uint32: 32, uint64: 64 };

/**
 * BitShift (unsigned integers, NumPy broadcasting): x << y or x >> y per `direction`; bits
 * shifted past the type's width are lost, and a shift by the width or more gives 0.
 */
export const BitShift: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  const y = requireInput(inputs, 1, 'Y', ctx);
  const width = UNSIGNED_BITS[x.dtype];
  if (width === undefined || y.dtype !== x.dtype)
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: inputs have types ${x.dtype} and ${y.dtype}`,
      'BitShift takes two tensors of one unsigned integer type (uint8, uint16, uint32, uint64)',
    );
  const direction = ctx.attrs.string('direction');
  if (direction !== 'LEFT' && direction !== 'RIGHT')
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: direction = ${direction === undefined ? 'missing' : `'${direction}'`}`,
      "set direction to 'LEFT' or 'RIGHT'",
    );
  const dims = broadcastDims([x.dims, y.dims], ctx);
  const ix = broadcastIndex(x.dims, dims);
  const iy = broadcastIndex(y.dims, dims);
  const out = allocData(x.dtype, ix.length);
  const mask = (1n << BigInt(width)) - 1n;
  const xs = slots(x.data);
  const ys = slots(y.data);
  const dst = slots(out);
  for (let i = 0; i < ix.length; i++) {
    const v = BigInt(xs[ix[i] as number] as number | bigint);
    const s = BigInt(ys[iy[i] as number] as number | bigint);
    const r = s >= BigInt(width) ? 0n : direction === 'LEFT' ? (v << s) & mask : v >> s;
    dst[i] = width === 64 ? r : Number(r);
  }
  return [makeTensor(x.dtype, dims, out)];
};

/**
 * GatherElements along `axis`: out has indices' shape, out[i] = data[i with its axis coordinate
 * replaced by indices[i]] (negative indices count from the end).
 */
export const GatherElements: OpImpl = (inputs, ctx) => {
  const data = requireInput(inputs, 0, 'data', ctx);
  const indices = requireInput(inputs, 1, 'indices', ctx);
  const rank = data.dims.length;
  if (indices.dims.length !== rank)
    throw badShape(ctx, `indices [${indices.dims.join(', ')}] must have data's rank ${rank}`);
  const axis = normalizeAxis(ctx.attrs.int('axis', 0), rank, ctx);
  const idx = indexValues(indices, ctx);
  const dataStrides = stridesOf(data.dims);
  const outStrides = stridesOf(indices.dims);
  const axisLen = data.dims[axis] as number;
  const out = allocData(data.dtype, idx.length);
  const src = slots(data.data);
  const dst = slots(out);
  for (let i = 0; i < idx.length; i++) {
    let offset = 0;
    let rest = i;
    for (let d = 0; d < rank; d++) {
      const coord = Math.floor(rest / (outStrides[d] as number));
      rest -= coord * (outStrides[d] as number);
      if (d !== axis && coord >= (data.dims[d] as number))
        throw badShape(ctx, `indices [${indices.dims.join(', ')}] exceed data [${data.dims.join(', ')}] on axis ${d}`);
      const c = d === axis ? inRange(idx[i] as number, axisLen, ctx) : coord;
      offset += c * (dataStrides[d] as number);
    }
    dst[i] = src[offset];
  }
  return [makeTensor(data.dtype, [...indices.dims], out)];
};

/**
 * ScatterND without reduction: a copy of data where each row of indices [..., q] addresses a
 * slice data[i0, …, iq−1, ...] and takes the matching slice of updates. Duplicate indices are
 * refused (ONNX leaves their order undefined).
 */
export const ScatterND: OpImpl = (inputs, ctx) => {
  const data = requireInput(inputs, 0, 'data', ctx);
  const indices = requireInput(inputs, 1, 'indices', ctx);
  const updates = requireInput(inputs, 2, 'updates', ctx);
  const reduction = ctx.attrs.string('reduction', 'none');
  if (reduction !== 'none')
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `${ctx.where}: ScatterND with reduction '${reduction}' is not run by the reference interpreter`,
      "use reduction 'none'",
    );
  if (updates.dtype !== data.dtype)
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: updates are ${updates.dtype} but data is ${data.dtype}`,
      'updates must have the type of data',
    );
  const q = indices.dims[indices.dims.length - 1] ?? 0;
  if (indices.dims.length === 0 || q > data.dims.length)
    throw badShape(ctx, `indices [${indices.dims.join(', ')}] must end in at most data's rank ${data.dims.length}`);
  const rows = elementCount(indices.dims.slice(0, -1));
  const sliceDims = data.dims.slice(q);
  const slice = elementCount(sliceDims);
  const wantUpdates = [...indices.dims.slice(0, -1), ...sliceDims];
  if (updates.dims.length !== wantUpdates.length || updates.dims.some((d, i) => d !== wantUpdates[i]))
    throw badShape(ctx, `updates [${updates.dims.join(', ')}] must be [${wantUpdates.join(', ')}]`);
  const idx = indexValues(indices, ctx);
  const strides = stridesOf(data.dims);
  const out = allocData(data.dtype, data.data.length);
  const dst = slots(out);
  const src = slots(data.data);
  for (let i = 0; i < data.data.length; i++) dst[i] = src[i];
  const upd = slots(updates.data);
  const seen = new Set<number>();
  for (let r = 0; r < rows; r++) {
    let offset = 0;
    for (let d = 0; d < q; d++)
      offset += inRange(idx[r * q + d] as number, data.dims[d] as number, ctx) * (strides[d] as number);
    if (seen.has(offset))
      throw badShape(ctx, `indices address element offset ${offset} twice; ONNX leaves the result undefined`);
    seen.add(offset);
    for (let k = 0; k < slice; k++) dst[offset + k] = upd[r * slice + k];
  }
  return [makeTensor(data.dtype, [...data.dims], out)];
};

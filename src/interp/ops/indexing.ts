import { QuantkitError } from '../../errors.js';
import type { Tensor, TensorData } from '../../tensor/tensor.js';
import { allocData, elementCount, makeTensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex, normalizeAxis, stridesOf } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, requireInput } from '../op.js';

/** Element access on any storage (typed arrays of numbers or bigints, string arrays). */
type Slots = { [i: number]: unknown };
const slots = (d: TensorData) => d as unknown as Slots;

function integerValues(t: Tensor, name: string, ctx: OpContext): number[] {
  if (t.dtype !== 'int64' && t.dtype !== 'int32')
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: '${name}' has type ${t.dtype}`,
      `'${name}' must be an int32 or int64 tensor`,
    );
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/**
 * Gather along `axis`: out[i.., j.., k..] = data[i.., indices[j..], k..]; negative indices count
 * from the end of the axis. Output dims: data's before axis, indices', data's after axis.
 */
export const Gather: OpImpl = (inputs, ctx) => {
  const data = requireInput(inputs, 0, 'data', ctx);
  const indices = requireInput(inputs, 1, 'indices', ctx);
  const axis = normalizeAxis(ctx.attrs.int('axis', 0), data.dims.length, ctx);
  const axisLen = data.dims[axis] as number;
  const idx = integerValues(indices, 'indices', ctx).map((i) => {
    if (i < -axisLen || i >= axisLen) throw badShape(ctx, `index ${i} is out of range for an axis of ${axisLen}`);
    return i < 0 ? i + axisLen : i;
  });
  const outer = elementCount(data.dims.slice(0, axis));
  const inner = elementCount(data.dims.slice(axis + 1));
  const outDims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
  const out = allocData(data.dtype, outer * idx.length * inner);
  const src = slots(data.data);
  const dst = slots(out);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const i of idx) {
      const base = (a * axisLen + i) * inner;
      for (let k = 0; k < inner; k++) dst[o++] = src[base + k];
    }
  }
  return [makeTensor(data.dtype, outDims, out)];
};

/** Concat along `axis` (negative counts from the back); all inputs share every other dim. */
export const Concat: OpImpl = (inputs, ctx) => {
  const parts = inputs.map((t, i) => requireInput(inputs, i, `inputs[${i}]`, ctx));
  const first = parts[0];
  if (!first) throw badShape(ctx, 'Concat needs at least one input');
  const rank = first.dims.length;
  const axis = normalizeAxis(ctx.attrs.int('axis', 0), rank, ctx);
  for (const p of parts) {
    if (p.dtype !== first.dtype)
      throw new QuantkitError(
        'QK_BAD_INPUT_TYPE',
        `${ctx.where}: inputs have types ${first.dtype} and ${p.dtype}`,
        'all Concat inputs must have the same type',
      );
    if (p.dims.length !== rank || p.dims.some((d, i) => i !== axis && d !== first.dims[i]))
      throw badShape(ctx, `[${p.dims.join(', ')}] does not fit [${first.dims.join(', ')}] outside axis ${axis}`);
  }
  const outDims = [...first.dims];
  outDims[axis] = parts.reduce((s, p) => s + (p.dims[axis] as number), 0);
  const outer = elementCount(first.dims.slice(0, axis));
  const out = allocData(first.dtype, elementCount(outDims));
  const dst = slots(out);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const p of parts) {
      const chunk = elementCount(p.dims.slice(axis));
      const src = slots(p.data);
      for (let k = 0; k < chunk; k++) dst[o++] = src[a * chunk + k];
    }
  }
  return [makeTensor(first.dtype, outDims, out)];
};

/**
 * Slice (opset 10+: starts/ends/axes/steps inputs; before: attributes). Per axis, a negative
 * start/end counts from the end; then start is clamped to [0, d] (step > 0) or [0, d − 1]
 * (step < 0) and end to [0, d] or [−1, d − 1]; the slice takes start, start + step, … short of end.
 */
export const Slice: OpImpl = (inputs, ctx) => {
  const data = requireInput(inputs, 0, 'data', ctx);
  const rank = data.dims.length;
  const fromInputs = ctx.opset >= 10 || inputs.length > 1;
  const starts = fromInputs
    ? integerValues(requireInput(inputs, 1, 'starts', ctx), 'starts', ctx)
    : ctx.attrs.ints('starts');
  const ends = fromInputs ? integerValues(requireInput(inputs, 2, 'ends', ctx), 'ends', ctx) : ctx.attrs.ints('ends');
  if (!starts || !ends || starts.length !== ends.length) throw badShape(ctx, 'starts and ends must have equal lengths');
  const axesIn = fromInputs ? inputs[3] : undefined;
  const axes =
    (axesIn ? integerValues(axesIn, 'axes', ctx) : fromInputs ? undefined : ctx.attrs.ints('axes')) ??
    starts.map((_, i) => i);
  const stepsIn = fromInputs ? inputs[4] : undefined;
  const steps = stepsIn ? integerValues(stepsIn, 'steps', ctx) : starts.map(() => 1);
  if (axes.length !== starts.length || steps.length !== starts.length)
    throw badShape(ctx, 'axes and steps must have one entry per start');
  const begin = new Array<number>(rank).fill(0);
  const step = new Array<number>(rank).fill(1);
  const outDims = [...data.dims];
  const seen = new Set<number>();
  axes.forEach((rawAxis, i) => {
    const ax = normalizeAxis(rawAxis, rank, ctx);
    if (seen.has(ax)) throw badShape(ctx, `axis ${ax} is sliced twice`);
    seen.add(ax);
    const d = data.dims[ax] as number;
    const s = steps[i] as number;
    if (s === 0) throw badShape(ctx, 'a step of 0 is not allowed');
    let b = starts[i] as number;
    let e = ends[i] as number;
    if (b < 0) b += d;
    if (e < 0) e += d;
    if (s > 0) {
      b = Math.min(Math.max(b, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      b = Math.min(Math.max(b, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    begin[ax] = b;
    step[ax] = s;
    outDims[ax] = Math.max(0, Math.ceil((e - b) / s));
  });
  const inStrides = stridesOf(data.dims);
  const count = elementCount(outDims);
  const out = allocData(data.dtype, count);
  const src = slots(data.data);
  const dst = slots(out);
  const idx = new Array<number>(rank).fill(0);
  for (let n = 0; n < count; n++) {
    let off = 0;
    for (let ax = 0; ax < rank; ax++)
      off += ((begin[ax] as number) + (idx[ax] as number) * (step[ax] as number)) * (inStrides[ax] as number);
    dst[n] = src[off];
    for (let ax = rank - 1; ax >= 0; ax--) {
      if (++(idx as number[])[ax]! < (outDims[ax] as number)) break;
      idx[ax] = 0;
    }
  }
  return [makeTensor(data.dtype, outDims, out)];
};

/** Expand: `input` broadcast (NumPy rules) against `shape`; the output has the broadcast dims. */
export const Expand: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'input', ctx);
  const shape = integerValues(requireInput(inputs, 1, 'shape', ctx), 'shape', ctx);
  const dims = broadcastDims([x.dims, shape], ctx);
  return [gatherBy(x, dims, broadcastIndex(x.dims, dims))];
};

/** Where: X where `condition` is true, else Y, all three broadcast together. */
export const Where: OpImpl = (inputs, ctx) => {
  const cond = requireInput(inputs, 0, 'condition', ctx);
  const x = requireInput(inputs, 1, 'X', ctx);
  const y = requireInput(inputs, 2, 'Y', ctx);
  if (cond.dtype !== 'bool')
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: condition has type ${cond.dtype}`,
      'condition must be bool',
    );
  if (x.dtype !== y.dtype)
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: X is ${x.dtype} but Y is ${y.dtype}`,
      'X and Y must have the same type',
    );
  const dims = broadcastDims([cond.dims, x.dims, y.dims], ctx);
  const ic = broadcastIndex(cond.dims, dims);
  const ix = broadcastIndex(x.dims, dims);
  const iy = broadcastIndex(y.dims, dims);
  const c = cond.data as Uint8Array;
  const out = allocData(x.dtype, ic.length);
  const dst = slots(out);
  const sx = slots(x.data);
  const sy = slots(y.data);
  for (let i = 0; i < ic.length; i++) dst[i] = c[ic[i] as number] ? sx[ix[i] as number] : sy[iy[i] as number];
  return [makeTensor(x.dtype, dims, out)];
};

function gatherBy(x: Tensor, dims: readonly number[], map: Int32Array): Tensor {
  const out = allocData(x.dtype, map.length);
  const dst = slots(out);
  const src = slots(x.data);
  for (let i = 0; i < map.length; i++) dst[i] = src[map[i] as number];
  return makeTensor(x.dtype, dims, out);
}

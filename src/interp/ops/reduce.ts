import { QuantkitError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { elementCount, makeTensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex, normalizeAxis, stridesOf } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { requireInput } from '../op.js';
import { encodeFloat, isFloat, toFloat64 } from '../values.js';

/*
 * Max and ReduceMax on float types, which int8-dynamic's per-token form computes its row scales
 * with. A maximum is one of its inputs, so the results are exact in every float type; NaN
 * propagates, as in ONNX Runtime.
 */

function floats(t: Tensor, op: string, ctx: OpContext): Float64Array {
  if (!isFloat(t.dtype))
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: ${op} on ${t.dtype} is not supported`,
      `${op} takes float inputs here`,
    );
  return toFloat64(t);
}

const max = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b);

/** Max of any number of inputs of one float type, NumPy broadcasting. */
export const Max: OpImpl = (inputs, ctx) => {
  const xs = inputs.map((t, i) => requireInput(inputs, i, `data_0[${i}]`, ctx));
  const first = xs[0];
  if (!first) throw new QuantkitError('QK_MISSING_INPUT', `${ctx.where}: Max has no inputs`, 'give it one or more');
  for (const x of xs)
    if (x.dtype !== first.dtype)
      throw new QuantkitError(
        'QK_BAD_INPUT_TYPE',
        `${ctx.where}: inputs have types ${first.dtype} and ${x.dtype}`,
        'all Max inputs must have the same type; insert a Cast',
      );
  const dims = broadcastDims(
    xs.map((x) => x.dims),
    ctx,
  );
  const y = new Float64Array(elementCount(dims)).fill(-Infinity);
  for (const x of xs) {
    const v = floats(x, 'Max', ctx);
    const at = broadcastIndex(x.dims, dims);
    for (let i = 0; i < y.length; i++) y[i] = max(y[i] as number, v[at[i] as number] as number);
  }
  return [makeTensor(first.dtype, dims, encodeFloat(first.dtype, y))];
};

/**
 * ReduceMax over `axes` (an attribute before opset 18, the optional second input from 18; none:
 * every axis unless noop_with_empty_axes), keeping the reduced axes as 1 when keepdims (default).
 */
export const ReduceMax: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'data', ctx);
  const rank = x.dims.length;
  const given =
    ctx.opset >= 18
      ? inputs[1]
        ? Array.from(inputs[1].data as BigInt64Array, Number)
        : []
      : (ctx.attrs.ints('axes') ?? []);
  if (given.length === 0 && ctx.attrs.int('noop_with_empty_axes', 0) === 1) return [x];
  const axes = new Set(given.length ? given.map((a) => normalizeAxis(a, rank, ctx)) : x.dims.map((_, i) => i));
  const keepdims = ctx.attrs.int('keepdims', 1) === 1;
  const outFull = x.dims.map((d, i) => (axes.has(i) ? 1 : d));
  const outStrides = stridesOf(outFull);
  const inStrides = stridesOf(x.dims);
  const v = floats(x, 'ReduceMax', ctx);
  const y = new Float64Array(elementCount(outFull)).fill(-Infinity);
  for (let i = 0; i < v.length; i++) {
    let o = 0;
    let rest = i;
    for (let d = 0; d < rank; d++) {
      const c = Math.floor(rest / (inStrides[d] as number));
      rest -= c * (inStrides[d] as number);
      if (!axes.has(d)) o += c * (outStrides[d] as number);
    }
    y[o] = max(y[o] as number, v[i] as number);
  }
  const dims = keepdims ? outFull : x.dims.filter((_, i) => !axes.has(i));
  return [makeTensor(x.dtype, dims, encodeFloat(x.dtype, y))];
};

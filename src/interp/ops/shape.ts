import { QuantkitError } from '../../errors.js';
import type { Tensor, TensorData } from '../../tensor/tensor.js';
import { allocData, elementCount, makeTensor } from '../../tensor/tensor.js';
import { normalizeAxis, stridesOf } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { badShape, requireInput } from '../op.js';

function shapeValues(t: Tensor): number[] {
  if (t.dtype !== 'int64' && t.dtype !== 'int32')
    throw new QuantkitError('QK_BAD_INPUT_TYPE', `shape tensor has type ${t.dtype}`, 'shapes are int64 tensors');
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Reshape: 0 copies the input dim (unless allowzero=1, then it means 0), one −1 is inferred. */
export const Reshape: OpImpl = (inputs, ctx) => {
  const data = requireInput(inputs, 0, 'data', ctx);
  const requested = shapeValues(requireInput(inputs, 1, 'shape', ctx));
  const allowZero = ctx.attrs.int('allowzero', 0) !== 0;
  const dims = requested.map((d, i) => (d === 0 && !allowZero ? (data.dims[i] ?? badDim(i)) : d));
  const inferred = dims.indexOf(-1);
  if (dims.filter((d) => d === -1).length > 1 || dims.some((d) => d < -1))
    throw badShape(ctx, `shape [${requested.join(', ')}] is invalid`);
  const total = data.data.length;
  if (inferred >= 0) {
    const known = dims.reduce((p, d) => (d === -1 ? p : p * d), 1);
    if (known === 0 || total % known !== 0)
      throw badShape(ctx, `cannot infer -1 in [${requested.join(', ')}] for ${total} elements`);
    dims[inferred] = total / known;
  }
  if (elementCount(dims) !== total)
    throw badShape(ctx, `shape [${requested.join(', ')}] does not hold ${total} elements`);
  return [makeTensor(data.dtype, dims, data.data)];

  function badDim(i: number): never {
    throw badShape(ctx, `shape entry ${i} is 0 but the input has rank ${data.dims.length}`);
  }
};

/** Flatten to 2-D: [d0 × … × d(axis−1), d(axis) × … × d(n−1)]; axis may be negative or equal rank. */
export const Flatten: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'input', ctx);
  const rank = x.dims.length;
  let axis = ctx.attrs.int('axis', 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) throw badShape(ctx, `axis ${ctx.attrs.int('axis', 1)} is out of range for rank ${rank}`);
  const outer = elementCount(x.dims.slice(0, axis));
  return [makeTensor(x.dtype, [outer, elementCount(x.dims.slice(axis))], x.data)];
};

/** Transpose: output axis i is input axis perm[i]; default perm reverses the axes. */
export const Transpose: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'data', ctx);
  const rank = x.dims.length;
  const perm = (ctx.attrs.ints('perm') ?? x.dims.map((_, i) => rank - 1 - i)).map((p) =>
    normalizeAxis(p, rank, ctx, 'perm entry'),
  );
  if (perm.length !== rank || new Set(perm).size !== rank)
    throw badShape(ctx, `perm [${perm.join(', ')}] is not a permutation of ${rank} axes`);
  const outDims = perm.map((p) => x.dims[p] as number);
  const inStrides = stridesOf(x.dims);
  const strides = perm.map((p) => inStrides[p] as number);
  const count = x.data.length;
  const out: TensorData = allocData(x.dtype, count);
  const idx = new Int32Array(rank);
  let src = 0;
  const from = x.data as unknown as { [i: number]: unknown };
  const to = out as unknown as { [i: number]: unknown };
  for (let n = 0; n < count; n++) {
    to[n] = from[src];
    for (let ax = rank - 1; ax >= 0; ax--) {
      const i = (idx[ax] as number) + 1;
      if (i < (outDims[ax] as number)) {
        idx[ax] = i;
        src += strides[ax] as number;
        break;
      }
      idx[ax] = 0;
      src -= (i - 1) * (strides[ax] as number);
    }
  }
  return [makeTensor(x.dtype, outDims, out)];
};

/** The int64 axes of Unsqueeze/Squeeze: the `axes` input (opset 13+) or attribute (before). */
function axesOf(inputs: readonly (Tensor | undefined)[], ctx: OpContext): number[] | undefined {
  const t = inputs[1];
  if (t) return shapeValues(t);
  return ctx.attrs.ints('axes');
}

/** Shape (opset 15: start/end, clamped, negative counting from the back) as a 1-D int64 tensor. */
export const Shape: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'data', ctx);
  const rank = x.dims.length;
  const clampAxis = (a: number) => Math.min(rank, Math.max(0, a < 0 ? a + rank : a));
  const start = clampAxis(ctx.attrs.int('start', 0));
  const end = clampAxis(ctx.attrs.int('end', rank));
  const dims = x.dims.slice(start, Math.max(start, end));
  return [
    makeTensor(
      'int64',
      [dims.length],
      BigInt64Array.from(dims, (d) => BigInt(d)),
    ),
  ];
};

/** Unsqueeze: size-1 axes inserted at `axes`, which count in the output's rank. */
export const Unsqueeze: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'data', ctx);
  const axes = axesOf(inputs, ctx);
  if (!axes) throw badShape(ctx, 'Unsqueeze needs axes');
  const rank = x.dims.length + axes.length;
  const at = new Set(axes.map((a) => normalizeAxis(a, rank, ctx)));
  if (at.size !== axes.length) throw badShape(ctx, `axes [${axes.join(', ')}] repeat an axis`);
  const dims: number[] = [];
  let src = 0;
  for (let i = 0; i < rank; i++) dims.push(at.has(i) ? 1 : (x.dims[src++] as number));
  return [makeTensor(x.dtype, dims, x.data)];
};

/** Squeeze: the listed size-1 axes removed, or every size-1 axis when none are listed. */
export const Squeeze: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'data', ctx);
  const axes = axesOf(inputs, ctx);
  const rank = x.dims.length;
  const drop = new Set(
    axes ? axes.map((a) => normalizeAxis(a, rank, ctx)) : x.dims.flatMap((d, i) => (d === 1 ? [i] : [])),
  );
  for (const a of drop) if (x.dims[a] !== 1) throw badShape(ctx, `axis ${a} has size ${x.dims[a]}, not 1`);
  return [
    makeTensor(
      x.dtype,
      x.dims.filter((_, i) => !drop.has(i)),
      x.data,
    ),
  ];
};

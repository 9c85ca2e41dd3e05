import { QuantkitError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { makeTensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { requireInput } from '../op.js';
import { encodeFloat, isFloat, toFloat64 } from '../values.js';

type Kind = 'add' | 'sub' | 'mul' | 'div';

const OP_NAME: Record<Kind, string> = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div' };

function floatOp(kind: Kind, x: number, z: number): number {
  return kind === 'add' ? x + z : kind === 'sub' ? x - z : kind === 'mul' ? x * z : x / z;
}

/** Integer division truncates toward zero (C's `/`, what ONNX Runtime computes); x / 0 is refused. */
function int32Op(kind: Kind, x: number, z: number): number {
  if (kind === 'add') return (x + z) | 0;
  if (kind === 'sub') return (x - z) | 0;
  if (kind === 'mul') return Math.imul(x, z);
  return Math.trunc(x / z) | 0;
}

function int64Op(kind: Kind, x: bigint, z: bigint): bigint {
  return BigInt.asIntN(64, kind === 'add' ? x + z : kind === 'sub' ? x - z : kind === 'mul' ? x * z : x / z);
}

/**
 * Add, Sub, Mul and Div with NumPy broadcasting. Float types: the exact float64 result of one
 * operation on two values of the type, rounded once to the type — which is the correctly rounded
 * IEEE operation for fp32/fp16/bf16 (float64 carries more than twice their precision, so the
 * double rounding is innocuous). int32: wraps modulo 2^32 (Math.imul for products); int64:
 * BigInt, wrapping modulo 2^64; integer Div truncates toward zero.
 */
function binary(a: Tensor, b: Tensor, kind: Kind, ctx: OpContext): Tensor {
  if (a.dtype !== b.dtype) {
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: inputs have types ${a.dtype} and ${b.dtype}`,
      'both inputs must have the same type; insert a Cast',
    );
  }
  const dims = broadcastDims([a.dims, b.dims], ctx);
  const ia = broadcastIndex(a.dims, dims);
  const ib = broadcastIndex(b.dims, dims);
  const n = ia.length;
  if (isFloat(a.dtype)) {
    const va = toFloat64(a);
    const vb = toFloat64(b);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = floatOp(kind, va[ia[i] as number] as number, vb[ib[i] as number] as number);
    return makeTensor(a.dtype, dims, encodeFloat(a.dtype, y));
  }
  if (kind === 'div' && !isFloat(a.dtype) && hasZero(b))
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: integer Div by zero`,
      'integer division by zero is undefined in ONNX; check the divisor',
    );
  if (a.dtype === 'int32') {
    const va = a.data as Int32Array;
    const vb = b.data as Int32Array;
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) y[i] = int32Op(kind, va[ia[i] as number] as number, vb[ib[i] as number] as number);
    return makeTensor('int32', dims, y);
  }
  if (a.dtype === 'int64') {
    const va = a.data as BigInt64Array;
    const vb = b.data as BigInt64Array;
    const y = new BigInt64Array(n);
    for (let i = 0; i < n; i++) y[i] = int64Op(kind, va[ia[i] as number] as bigint, vb[ib[i] as number] as bigint);
    return makeTensor('int64', dims, y);
  }
  throw new QuantkitError(
    'QK_BAD_INPUT_TYPE',
    `${ctx.where}: ${OP_NAME[kind]} on ${a.dtype} is not supported by the reference interpreter`,
    'use float, int32 or int64 inputs',
  );
}

function hasZero(t: Tensor): boolean {
  const d = t.data as ArrayLike<number | bigint>;
  for (let i = 0; i < d.length; i++) if (d[i] == 0) return true;
  return false;
}

const binaryOp =
  (kind: Kind): OpImpl =>
  (inputs, ctx) => [binary(requireInput(inputs, 0, 'A', ctx), requireInput(inputs, 1, 'B', ctx), kind, ctx)];

export const Add = binaryOp('add');
export const Sub = binaryOp('sub');
export const Mul = binaryOp('mul');
export const Div = binaryOp('div');

/** Relu: max(0, x); NaN stays NaN and −0 stays −0 (x < 0 is false for both), as max(0, x) in C. */
export const Relu: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'X', ctx);
  if (isFloat(x.dtype)) {
    const v = Float64Array.from(toFloat64(x));
    for (let i = 0; i < v.length; i++) if ((v[i] as number) < 0) v[i] = 0;
    return [makeTensor(x.dtype, x.dims, encodeFloat(x.dtype, v))];
  }
  if (x.dtype === 'int64')
    return [
      makeTensor(
        x.dtype,
        x.dims,
        (x.data as BigInt64Array).map((v) => (v < 0n ? 0n : v)),
      ),
    ];
  if (x.dtype === 'int8' || x.dtype === 'int16' || x.dtype === 'int32') {
    const data = (x.data as Int8Array | Int16Array | Int32Array).map((v) => (v < 0 ? 0 : v));
    return [makeTensor(x.dtype, x.dims, data)];
  }
  throw new QuantkitError(
    'QK_BAD_INPUT_TYPE',
    `${ctx.where}: Relu on ${x.dtype} is not supported`,
    'use a float or signed integer input',
  );
};

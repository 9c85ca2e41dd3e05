import { decodeToFloat64, encodeNumbers } from '../formats/convert.js';
import { QuantkitError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import { dtypeInfo } from '../tensor/dtype.js';
import type { Tensor, TensorData } from '../tensor/tensor.js';
import { makeTensor } from '../tensor/tensor.js';
import type { OpContext } from './op.js';

/**
 * Every element of `t` as its exact value in a float64 (all fp8/fp4/fp16/bf16/fp32 values and all
 * integers up to 2^53 are exact; int64 beyond that rounds). Floating formats decode through
 * formats/convert so the bit-level rules live in one place.
 */
export function toFloat64(t: Tensor): Float64Array {
  const { kind } = dtypeInfo(t.dtype);
  if (t.dtype === 'float64') return t.data as Float64Array;
  if (kind === 'float') return decodeToFloat64(t.dtype, t.data);
  if (kind === 'string')
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `tensor${t.name ? ` '${t.name}'` : ''} holds strings, not numbers`,
      'the reference interpreter computes on numeric tensors only',
    );
  const out = new Float64Array(t.data.length);
  const src = t.data as ArrayLike<number | bigint>;
  for (let i = 0; i < out.length; i++) out[i] = Number(src[i]);
  return out;
}

/**
 * Storage of `dtype` holding `values` rounded to the nearest representable value (half to even;
 * formats/convert carries the ONNX saturate and round_mode rules for narrow floats). Only for
 * float dtypes: integer targets need an explicit rounding/overflow policy (see Cast, QuantizeLinear).
 */
export function encodeFloat(
  dtype: DType,
  values: Float64Array,
  opts: { saturate?: boolean; roundMode?: 'up' | 'down' | 'nearest' } = {},
): TensorData {
  if (dtype === 'float64') return values;
  if (dtype === 'float32') return Float32Array.from(values);
  return encodeNumbers(dtype, values, opts);
}

export function floatTensor(dtype: DType, dims: readonly number[], values: Float64Array): Tensor {
  return makeTensor(dtype, dims, encodeFloat(dtype, values));
}

/** Rounds every value in place to the nearest value of float `dtype` (the precision of a step). */
export function roundToFloat(dtype: DType, values: Float64Array): Float64Array {
  if (dtype === 'float64') return values;
  if (dtype === 'float32') {
    for (let i = 0; i < values.length; i++) values[i] = Math.fround(values[i] as number);
    return values;
  }
  return decodeToFloat64(dtype, encodeNumbers(dtype, values));
}

export function isFloat(dtype: DType): boolean {
  return dtypeInfo(dtype).kind === 'float';
}

/** An op's float input as float64, or the node and input named when it is not float. */
export function floatInput(t: Tensor, name: string, ctx: OpContext): Float64Array {
  if (!isFloat(t.dtype))
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: input '${name}' has type ${t.dtype}`,
      'this op takes float inputs',
    );
  return toFloat64(t);
}

import { QuantkitError } from '../errors.js';
import type { DType } from './dtype.js';

/**
 * In-memory element storage, one slot per element (sub-byte types are unpacked; packing happens
 * only at the byte boundary in io/ and formats/pack). Floating formats narrower than fp32 hold
 * their bit patterns, so every value is kept bit-exactly:
 *   float32 Float32Array · float64 Float64Array · float16/bfloat16 Uint16Array (bits)
 *   float8* / float8e8m0 / float4e2m1 Uint8Array (codes)
 *   int2/int4/int8 Int8Array · uint2/uint4/uint8/bool Uint8Array · int16 Int16Array · uint16 Uint16Array
 *   int32 Int32Array · uint32 Uint32Array · int64 BigInt64Array · uint64 BigUint64Array · string string[]
 */
export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

export interface Tensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: TensorData;
  /** Optional name, e.g. from a TensorProto or a graph value. */
  readonly name?: string;
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Allocates zeroed storage of the right typed-array class for `count` elements of `dtype`. */
export function allocData(dtype: DType, count: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(count);
    case 'float64':
      return new Float64Array(count);
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return new Uint16Array(count);
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz':
    case 'float8e8m0':
    case 'float4e2m1':
    case 'uint2':
    case 'uint4':
    case 'uint8':
    case 'bool':
      return new Uint8Array(count);
    case 'int2':
    case 'int4':
    case 'int8':
      return new Int8Array(count);
    case 'int16':
      return new Int16Array(count);
    case 'int32':
      return new Int32Array(count);
    case 'uint32':
      return new Uint32Array(count);
    case 'int64':
      return new BigInt64Array(count);
    case 'uint64':
      return new BigUint64Array(count);
    case 'string':
      return new Array<string>(count).fill('');
  }
}

export function makeTensor(dtype: DType, dims: readonly number[], data?: TensorData, name?: string): Tensor {
  const count = elementCount(dims);
  const storage = data ?? allocData(dtype, count);
  if (storage.length !== count) {
    throw new QuantkitError(
      'QK_TENSOR_SIZE_MISMATCH',
      `tensor${name ? ` '${name}'` : ''} of dims [${dims.join(', ')}] needs ${count} elements but has ${storage.length}`,
      'check the dims and the data length agree',
    );
  }
  return name === undefined
    ? { dtype, dims: [...dims], data: storage }
    : { dtype, dims: [...dims], data: storage, name };
}

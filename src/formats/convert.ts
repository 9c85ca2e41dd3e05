import { QuantkitError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import { allocData, type TensorData } from '../tensor/tensor.js';
import { decodeBfloat16, encodeBfloat16 } from './bfloat16.js';
import { encodeFloat16, float16Table } from './float16.js';
import { float4e2m1Table, encodeFloat4e2m1 } from './float4.js';
import { encodeFloat8, float8Table } from './float8.js';
import { decodeE8m0, encodeE8m0, type E8m0RoundMode } from './float8e8m0.js';
import { castToInt, saturateToInt } from './integer.js';
import { roundHalfEven } from './rounding.js';

/**
 * Generic, dtype-driven encode/decode between JS numbers and tensor storage (one slot per element,
 * as src/tensor/tensor.ts lays out: bit patterns / codes for narrow floats, values for integers).
 */
export interface EncodeOptions {
  /** float8 kinds and float8e8m0 only (ONNX Cast/QuantizeLinear `saturate`); default true. */
  readonly saturate?: boolean;
  /** float8e8m0 only (ONNX Cast `round_mode`); default 'up'. */
  readonly roundMode?: E8m0RoundMode;
  /**
   * Integer targets only. 'quantize' (default): round half to even and clamp to the range, as
   * QuantizeLinear does. 'cast': ONNX Cast float→int (truncate for 8/16/32/64 bits, round half
   * even for 4/2 bits; out of range keeps the low bits; NaN/Inf → 0).
   */
  readonly integers?: 'quantize' | 'cast';
}

const TWO_63 = 9223372036854775808;
const TWO_64 = 18446744073709551616;

function encodeBigInt(x: number, signed: boolean, mode: 'quantize' | 'cast'): bigint {
  if (mode === 'quantize') {
    if (x !== x) return 0n;
    const lo = signed ? -TWO_63 : 0;
    const hi = signed ? TWO_63 : TWO_64; // exclusive: the largest int64 is not a double
    if (x >= hi) return signed ? 0x7fffffffffffffffn : 0xffffffffffffffffn;
    return BigInt(x < lo ? lo : roundHalfEven(x));
  }
  if (!Number.isFinite(x)) return 0n;
  const t = BigInt(Math.trunc(x));
  return signed ? BigInt.asIntN(64, t) : BigInt.asUintN(64, t);
}

/** Encodes every number of `src` into fresh storage of `dtype`. */
export function encodeNumbers(dtype: DType, src: ArrayLike<number>, opts: EncodeOptions = {}): TensorData {
  const n = src.length;
  const saturate = opts.saturate ?? true;
  const out = allocData(dtype, n);
  switch (dtype) {
    case 'float32':
    case 'float64': {
      const o = out as Float32Array | Float64Array; // the typed array does the (RNE) narrowing
      for (let i = 0; i < n; i++) o[i] = src[i] as number;
      return o;
    }
    case 'float16': {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) o[i] = encodeFloat16(src[i] as number);
      return o;
    }
    case 'bfloat16': {
      const o = out as Uint16Array;
      for (let i = 0; i < n; i++) o[i] = encodeBfloat16(src[i] as number);
      return o;
    }
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz': {
      const o = out as Uint8Array;
      for (let i = 0; i < n; i++) o[i] = encodeFloat8(src[i] as number, dtype, saturate);
      return o;
    }
    case 'float8e8m0': {
      const o = out as Uint8Array;
      const mode = opts.roundMode ?? 'up';
      for (let i = 0; i < n; i++) o[i] = encodeE8m0(src[i] as number, saturate, mode);
      return o;
    }
    case 'float4e2m1': {
      const o = out as Uint8Array;
      for (let i = 0; i < n; i++) o[i] = encodeFloat4e2m1(src[i] as number);
      return o;
    }
    case 'int2':
    case 'uint2':
    case 'int4':
    case 'uint4':
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32': {
      const o = out as Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;
      if (opts.integers === 'cast') for (let i = 0; i < n; i++) o[i] = castToInt(src[i] as number, dtype);
      else for (let i = 0; i < n; i++) o[i] = saturateToInt(src[i] as number, dtype);
      return o;
    }
    case 'int64':
    case 'uint64': {
      const o = out as BigInt64Array | BigUint64Array;
      const mode = opts.integers ?? 'quantize';
      for (let i = 0; i < n; i++) o[i] = encodeBigInt(src[i] as number, dtype === 'int64', mode);
      return o;
    }
    case 'bool': {
      // ONNX Cast: ±0 → false, everything else (NaN included) → true.
      const o = out as Uint8Array;
      for (let i = 0; i < n; i++) o[i] = (src[i] as number) === 0 ? 0 : 1;
      return o;
    }
    case 'string':
      throw new QuantkitError(
        'QK_STRING_NOT_NUMERIC',
        'cannot encode numbers as a string tensor',
        'pick a numeric dtype',
      );
  }
}

/** Decodes storage of `dtype` into exact float64 values (int64/uint64 beyond 2^53 are rounded). */
export function decodeToFloat64(dtype: DType, data: TensorData): Float64Array {
  const out = new Float64Array(data.length);
  decodeInto(dtype, data, out);
  return out;
}

/**
 * Decodes into float32. Exact for every narrow float format (each fits in binary32); float64 and
 * wide integers round to nearest even as a Float32Array store does.
 */
export function decodeToFloat32(dtype: DType, data: TensorData): Float32Array {
  const out = new Float32Array(data.length);
  if (dtype === 'bfloat16') {
    // bfloat16 is the top half of a binary32: shift its bits into place, no arithmetic.
    const bits = data as Uint16Array;
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = (bits[i] as number) << 16;
    return out;
  }
  decodeInto(dtype, data, out);
  return out;
}

function lookup(
  table: ArrayLike<number>,
  codes: Uint8Array | Uint16Array,
  out: Float32Array | Float64Array,
  mask: number,
): void {
  for (let i = 0; i < codes.length; i++) out[i] = table[(codes[i] as number) & mask] as number;
}

function decodeInto(dtype: DType, data: TensorData, out: Float32Array | Float64Array): void {
  switch (dtype) {
    case 'float16':
      lookup(float16Table(), data as Uint16Array, out, 0xffff);
      return;
    case 'bfloat16': {
      const bits = data as Uint16Array;
      for (let i = 0; i < bits.length; i++) out[i] = decodeBfloat16(bits[i] as number);
      return;
    }
    case 'float8e4m3fn':
    case 'float8e4m3fnuz':
    case 'float8e5m2':
    case 'float8e5m2fnuz':
      lookup(float8Table(dtype), data as Uint8Array, out, 0xff);
      return;
    case 'float8e8m0': {
      const codes = data as Uint8Array;
      for (let i = 0; i < codes.length; i++) out[i] = decodeE8m0(codes[i] as number);
      return;
    }
    case 'float4e2m1':
      lookup(float4e2m1Table(), data as Uint8Array, out, 0xf);
      return;
    case 'int64':
    case 'uint64': {
      const v = data as BigInt64Array | BigUint64Array;
      for (let i = 0; i < v.length; i++) out[i] = Number(v[i] as bigint);
      return;
    }
    case 'string':
      throw new QuantkitError(
        'QK_STRING_NOT_NUMERIC',
        'cannot decode a string tensor to numbers',
        'cast strings to numbers before decoding',
      );
    default: {
      // float32/float64 and the integer/bool dtypes hold their values directly.
      const v = data as Exclude<TensorData, string[] | BigInt64Array | BigUint64Array>;
      for (let i = 0; i < v.length; i++) out[i] = v[i] as number;
    }
  }
}

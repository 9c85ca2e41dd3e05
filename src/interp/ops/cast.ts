import { QuantkitError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { dtypeFromOnnx, dtypeInfo } from '../../tensor/dtype.js';
import type { Tensor, TensorData } from '../../tensor/tensor.js';
import { allocData, makeTensor } from '../../tensor/tensor.js';
import type { OpContext, OpImpl } from '../op.js';
import { requireInput } from '../op.js';
import { encodeFloat, toFloat64 } from '../values.js';

type RoundMode = 'up' | 'down' | 'nearest';

/**
 * ONNX Cast (opset 25) of `input` to `to`. Rules (operators spec, Cast):
 * - to a float type: round to nearest even from the exact value; fp8/e8m0 follow `saturate`
 *   (and `round_mode` for float8e8m0) through formats/convert;
 * - float to integer: truncate toward zero, then keep the low bits (the spec leaves out-of-range
 *   undefined; this is what the conformance data and NumPy do, e.g. -9 → int4 7); NaN → 0;
 * - integer to integer: keep the low bits, two's complement (200 int16 → -56 int8);
 * - to bool: zero → false, anything else (NaN included) → true; from bool: 0/1.
 */
/**
 * float4e2m1 has no NaN. The float4 page's Cast table sends NaN to 6, but ONNX's reference
 * implementation (which produced the backend conformance outputs) writes code 0x8 (−0), and
 * `quantkit run` must agree bit for bit with those outputs. formats/ keeps the page's rule for
 * the quantizers; only the interpreter's Cast follows the reference here.
 */
const FLOAT4_NAN_CODE_OF_ONNX_REFERENCE = 0x8;

function markFloat4NaN(values: Float64Array, codes: Uint8Array): void {
  for (let i = 0; i < values.length; i++) if (Number.isNaN(values[i])) codes[i] = FLOAT4_NAN_CODE_OF_ONNX_REFERENCE;
}

export function castTensor(input: Tensor, to: DType, opts: { saturate?: boolean; roundMode?: RoundMode } = {}): Tensor {
  if (input.dtype === to) return input;
  const toInfo = dtypeInfo(to);
  const fromInfo = dtypeInfo(input.dtype);
  if (toInfo.kind === 'string' || fromInfo.kind === 'string') {
    throw new QuantkitError(
      'QK_UNSUPPORTED_CAST',
      `Cast between string and ${toInfo.kind === 'string' ? input.dtype : to} is not supported`,
      'cast numeric tensors only',
    );
  }
  if (toInfo.kind === 'float') {
    const saturate = opts.saturate ?? true;
    const encodeOpts = to === 'float8e8m0' ? { saturate, roundMode: opts.roundMode ?? 'up' } : { saturate };
    const values = toFloat64(input);
    const encoded = encodeFloat(to, values, encodeOpts);
    if (to === 'float4e2m1') markFloat4NaN(values, encoded as Uint8Array);
    return makeTensor(to, input.dims, encoded);
  }
  if (toInfo.kind === 'bool') {
    const out = new Uint8Array(input.data.length);
    const src = input.data as ArrayLike<number | bigint>;
    if (fromInfo.kind === 'float') {
      const v = toFloat64(input);
      for (let i = 0; i < out.length; i++) out[i] = (v[i] as number) === 0 ? 0 : 1;
    } else {
      for (let i = 0; i < out.length; i++) out[i] = src[i] == 0 ? 0 : 1;
    }
    return makeTensor(to, input.dims, out);
  }
  return makeTensor(to, input.dims, castToInteger(input, to));
}

/**
 * Integer targets: the integer value reduced modulo 2^bits, two's complement for signed types.
 * ToInt32 (`| 0`) is exact modulo 2^32 for any finite double, so ≤ 32-bit targets need no BigInt.
 */
function castToInteger(input: Tensor, to: DType): TensorData {
  const { bits, kind } = dtypeInfo(to);
  const count = input.data.length;
  const out = allocData(to, count);
  const fromFloat = dtypeInfo(input.dtype).kind === 'float';
  const floats = fromFloat ? toFloat64(input) : undefined;
  const src = input.data as ArrayLike<number | bigint>;
  if (bits === 64) {
    const dst = out as BigInt64Array | BigUint64Array;
    for (let i = 0; i < count; i++) {
      const v = floats ? floatToBigInt(floats[i] as number) : BigInt(src[i] as number | bigint);
      dst[i] = kind === 'int' ? BigInt.asIntN(64, v) : BigInt.asUintN(64, v);
    }
    return out;
  }
  const dst = out as Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;
  const shift = 32 - bits;
  for (let i = 0; i < count; i++) {
    let low32: number;
    if (floats) {
      const f = floats[i] as number;
      low32 = Number.isFinite(f) ? Math.trunc(f) | 0 : 0;
    } else {
      const v = src[i] as number | bigint;
      low32 = typeof v === 'bigint' ? Number(BigInt.asIntN(32, v)) : v | 0;
    }
    // Sign- or zero-extend the low `bits` bits; typed-array stores then keep them as they are.
    dst[i] = kind === 'int' ? (low32 << shift) >> shift : (low32 << shift) >>> shift;
  }
  return out;
}

function floatToBigInt(f: number): bigint {
  return Number.isFinite(f) ? BigInt(Math.trunc(f)) : 0n;
}

function castAttrs(ctx: OpContext): { saturate: boolean; roundMode: RoundMode } {
  const saturate = ctx.attrs.int('saturate', 1) !== 0;
  const roundMode = ctx.attrs.string('round_mode', 'up');
  if (roundMode !== 'up' && roundMode !== 'down' && roundMode !== 'nearest') {
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: round_mode '${roundMode}' is not up, down or nearest`,
      'use one of the values the ONNX Cast spec lists',
    );
  }
  return { saturate, roundMode };
}

export const Cast: OpImpl = (inputs, ctx) => {
  const input = requireInput(inputs, 0, 'input', ctx);
  const to = ctx.attrs.int('to');
  if (to === undefined)
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: Cast needs the 'to' attribute`,
      'set to= the target TensorProto.DataType',
    );
  return [castTensor(input, dtypeFromOnnx(to, `${ctx.where} attribute 'to'`), castAttrs(ctx))];
};

/** CastLike: Cast to the element type of the second input (same saturate/round_mode rules). */
export const CastLike: OpImpl = (inputs, ctx) => {
  const input = requireInput(inputs, 0, 'input', ctx);
  const like = requireInput(inputs, 1, 'target_type', ctx);
  return [castTensor(input, like.dtype, castAttrs(ctx))];
};

import { QuantkitError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { dtypeFromOnnx, dtypeInfo } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { allocData, makeTensor } from '../../tensor/tensor.js';
import type { OpContext, OpImpl } from '../op.js';
import { requireInput } from '../op.js';
import { clamp, scaleIndexMap } from '../quant-params.js';
import { roundHalfEven } from '../../formats/rounding.js';
import { encodeFloat, isFloat, roundToFloat, toFloat64 } from '../values.js';

const QUANT_TYPES: readonly DType[] = [
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int4',
  'uint4',
  'int2',
  'uint2',
  'float8e4m3fn',
  'float8e4m3fnuz',
  'float8e5m2',
  'float8e5m2fnuz',
  'float4e2m1',
];

/** Saturation range of an integer quantized type (ONNX QuantizeLinear: uint8 [0, 255], int4 [-8, 7], ...). */
export function integerRange(dtype: DType): [number, number] {
  const { bits, kind } = dtypeInfo(dtype);
  return kind === 'int' ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/**
 * ONNX QuantizeLinear (opset 10–25): y = saturate(round(x / y_scale) + y_zero_point).
 * - The division runs in the precision of `precision` (if set) or of y_scale's type: x and the
 *   scale are taken to that type and the quotient is rounded to it.
 * - Integer targets: round half to even, add the zero point, clip to the type's range.
 * - fp8/fp4 targets: x / scale + zero point, then converted to the format (round to nearest even,
 *   `saturate` as in the Cast tables; fp4 always saturates).
 * Output type: the zero point's type, else `output_dtype`, else uint8.
 */
export const QuantizeLinear: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'x', ctx);
  const scale = requireInput(inputs, 1, 'y_scale', ctx);
  const zeroPoint = inputs[2];
  const target = outputType(zeroPoint, ctx);
  const precision = divisionPrecision(scale.dtype, ctx);
  const xs = roundToFloat(precision, Float64Array.from(toFloat64(x)));
  const scales = roundToFloat(precision, Float64Array.from(toFloat64(scale)));
  const zps = zeroPoint ? toFloat64(zeroPoint) : new Float64Array(scale.data.length); // absent zero point: 0 everywhere
  const map = scaleIndexMap(x.dims, scale, zeroPoint, ctx);
  const q = new Float64Array(xs.length);
  for (let i = 0; i < q.length; i++) q[i] = (xs[i] as number) / (scales[map[i] as number] as number);
  roundToFloat(precision, q);
  if (isFloat(target)) {
    for (let i = 0; i < q.length; i++) q[i] = (q[i] as number) + (zps[map[i] as number] as number);
    const saturate = ctx.attrs.int('saturate', 1) !== 0;
    return [makeTensor(target, x.dims, encodeFloat(target, q, { saturate }))];
  }
  const [lo, hi] = integerRange(target);
  const out = allocData(target, q.length) as Int8Array | Uint8Array | Int16Array | Uint16Array;
  for (let i = 0; i < q.length; i++)
    out[i] = clamp(roundHalfEven(q[i] as number) + (zps[map[i] as number] as number), lo, hi);
  return [makeTensor(target, x.dims, out)];
};

function outputType(zeroPoint: Tensor | undefined, ctx: OpContext): DType {
  const code = ctx.attrs.int('output_dtype', 0);
  const fromAttr = code === 0 ? undefined : dtypeFromOnnx(code, `${ctx.where} attribute 'output_dtype'`);
  if (zeroPoint && fromAttr && zeroPoint.dtype !== fromAttr) {
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `${ctx.where}: output_dtype ${fromAttr} differs from the zero point's type ${zeroPoint.dtype}`,
      'drop output_dtype or make them agree',
    );
  }
  const target = zeroPoint?.dtype ?? fromAttr ?? 'uint8';
  if (!QUANT_TYPES.includes(target)) {
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: cannot quantize to ${target}`,
      `QuantizeLinear targets ${QUANT_TYPES.join(', ')}`,
    );
  }
  return target;
}

/** The float type the division x / y_scale is carried out in. */
function divisionPrecision(scaleType: DType, ctx: OpContext): DType {
  const code = ctx.attrs.int('precision', 0);
  const p = code === 0 ? scaleType : dtypeFromOnnx(code, `${ctx.where} attribute 'precision'`);
  // Narrow formats (e8m0 scales) and int32 scales divide in float32: every such value is exact there.
  return p === 'float16' || p === 'bfloat16' || p === 'float64' ? p : 'float32';
}

import { QuantkitError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { dtypeFromOnnx } from '../../tensor/dtype.js';
import { makeTensor } from '../../tensor/tensor.js';
import type { OpImpl } from '../op.js';
import { requireInput } from '../op.js';
import { scaleIndexMap } from '../quant-params.js';
import { encodeFloat, toFloat64 } from '../values.js';

const OUTPUT_TYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/**
 * ONNX DequantizeLinear (opset 10–25): y = (x - x_zero_point) * x_scale, per-tensor, per-axis or
 * blocked like QuantizeLinear. x − zero point is exact (both are small integers or fp8/fp4 values);
 * the product is rounded once to the output type: `output_dtype` if set, else the scale's type.
 */
export const DequantizeLinear: OpImpl = (inputs, ctx) => {
  const x = requireInput(inputs, 0, 'x', ctx);
  const scale = requireInput(inputs, 1, 'x_scale', ctx);
  const zeroPoint = inputs[2];
  if (zeroPoint && zeroPoint.dtype !== x.dtype) {
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: zero point is ${zeroPoint.dtype} but x is ${x.dtype}`,
      'x and x_zero_point must have the same type',
    );
  }
  const code = ctx.attrs.int('output_dtype', 0);
  const out =
    code === 0
      ? scale.dtype === 'float8e8m0'
        ? 'float32'
        : scale.dtype
      : dtypeFromOnnx(code, `${ctx.where} attribute 'output_dtype'`);
  if (!OUTPUT_TYPES.includes(out)) {
    throw new QuantkitError(
      'QK_BAD_INPUT_TYPE',
      `${ctx.where}: cannot dequantize to ${out}`,
      `output types are ${OUTPUT_TYPES.join(', ')}`,
    );
  }
  const xs = toFloat64(x);
  const scales = toFloat64(scale);
  const zps = zeroPoint ? toFloat64(zeroPoint) : new Float64Array(scale.data.length); // absent zero point: 0 everywhere
  const map = scaleIndexMap(x.dims, scale, zeroPoint, ctx);
  const y = new Float64Array(xs.length);
  for (let i = 0; i < y.length; i++) {
    const s = map[i] as number;
    y[i] = ((xs[i] as number) - (zps[s] as number)) * (scales[s] as number);
  }
  return [makeTensor(out, x.dims, encodeFloat(out, y))];
};

import type { Tensor } from '../../tensor/tensor.js';
import { makeTensor } from '../../tensor/tensor.js';
import type { OpImpl } from '../op.js';
import { badShape, expectDType, requireInput } from '../op.js';
import { toFloat64 } from '../values.js';
import { DynamicQuantizeLinear } from './dynamic-quantize-linear.js';
import { MatMulInteger } from './matmul-integer.js';

const f = Math.fround;

/**
 * com.microsoft DynamicQuantizeMatMul (the `--dynamic-form contrib` of int8-dynamic), as ONNX
 * Runtime's CPU kernel computes it (contrib_ops/cpu/quantization/dynamic_quantize_matmul.cc):
 * A quantized to uint8 over the whole tensor as DynamicQuantizeLinear does (ORT takes scale 1 for
 * an all-zero A, where the codes and so the output are 0 either way), the int32 product of
 * MatMulInteger against B (int8/uint8 [K, N]) less its zero point (scalar or per column), then
 * per column Y = fp32(fp32(acc) · fp32(a_scale · b_scale[n])) (+ bias[n], in fp32): MLAS's
 * scale-and-bias output processor.
 */
export const DynamicQuantizeMatMul: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  const bScale = requireInput(inputs, 2, 'b_scale', ctx);
  expectDType(a, ['float32'], 'A', ctx);
  expectDType(bScale, ['float32'], 'b_scale', ctx);
  const N = b.dims[b.dims.length - 1] ?? 0;
  const column = (t: Tensor, name: string) => {
    if (t.data.length !== 1 && t.data.length !== N)
      throw badShape(ctx, `${name} must be a scalar or have N = ${N} elements, got [${t.dims.join(', ')}]`);
    const v = toFloat64(t);
    return (n: number) => (v.length === 1 ? (v[0] as number) : (v[n] as number));
  };
  const [q, aScale, aZero] = DynamicQuantizeLinear([a], ctx) as [Tensor, Tensor, Tensor];
  const acc = (MatMulInteger([q, b, aZero, inputs[3]], ctx)[0] as Tensor).data as Int32Array;
  const sa = (aScale.data as Float32Array)[0] as number;
  const scaleOf = column(bScale, 'b_scale');
  const bias = inputs[4] ? column(inputs[4], 'bias') : undefined;
  const multiplier = Float64Array.from({ length: N }, (_, n) => f((sa === 0 ? 1 : sa) * scaleOf(n)));
  const y = new Float32Array(acc.length);
  for (let i = 0; i < y.length; i++) {
    const n = i % N;
    const v = f(f(acc[i] as number) * (multiplier[n] as number));
    y[i] = bias ? f(v + bias(n)) : v;
  }
  const outDims = [...a.dims.slice(0, -1), N];
  return [makeTensor('float32', outDims, y)];
};

import { makeTensor } from '../../tensor/tensor.js';
import type { Tensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { expectDType, requireInput } from '../op.js';
import { matmulF64, matrixParamIndex } from '../matmul-kernel.js';
import { planMatMul } from '../matmul-shape.js';
import { toFloat64 } from '../values.js';
import { kernelCodes, matmulSaturationError, saturates } from '../emulate.js';

/**
 * `t − zero_point` as exact float64 values: per-tensor, per-row (rows = true, for A) or
 * per-column (for B) zero points, as MatMulInteger and QLinearMatMul allow.
 */
export function offsetByZeroPoint(t: Tensor, zp: Tensor | undefined, rows: boolean, ctx: OpContext): Float64Array {
  const v = Float64Array.from(toFloat64(t));
  if (!zp) return v;
  const z = toFloat64(zp);
  const map = matrixParamIndex(t.dims, zp.dims, rows, (p, d) => broadcastIndex(p, broadcastDims([p, d], ctx)));
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) - (z[map[i] as number] as number);
  return v;
}

export function addInPlace(y: Float64Array, d: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] = (y[i] as number) + (d[i] as number);
}

/** Wraps an exact integer to int32, as the spec allows accumulation to overflow only in 32 bits. */
export function toInt32(values: Float64Array): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = values[i] as number;
  return out;
}

/**
 * ONNX MatMulInteger (opset 10): int32 (A − a_zero_point) × (B − b_zero_point), numpy.matmul shapes;
 * with ctx.emulate, plus what the emulated kernel's saturation changes (emulate.ts).
 */
export const MatMulInteger: OpImpl = (inputs, ctx) => {
  const a = requireInput(inputs, 0, 'A', ctx);
  const b = requireInput(inputs, 1, 'B', ctx);
  expectDType(a, ['int8', 'uint8'], 'A', ctx);
  expectDType(b, ['int8', 'uint8'], 'B', ctx);
  const plan = planMatMul(a.dims, b.dims, ctx);
  const y = matmulF64(offsetByZeroPoint(a, inputs[2], true, ctx), offsetByZeroPoint(b, inputs[3], false, ctx), plan);
  if (a.dtype === 'uint8' && saturates(ctx.emulate, a.dtype, b.dtype))
    addInPlace(y, matmulSaturationError(kernelCodes(a), toFloat64(b), plan));
  return [makeTensor('int32', plan.outDims, toInt32(y))];
};

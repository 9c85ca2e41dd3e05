import { makeTensor } from '../../tensor/tensor.js';
import type { Tensor } from '../../tensor/tensor.js';
import { broadcastDims, broadcastIndex } from '../broadcast.js';
import type { OpContext, OpImpl } from '../op.js';
import { expectDType, requireInput } from '../op.js';
import { matmulF64, matrixParamIndex } from '../matmul-kernel.js';
import { planMatMul } from '../matmul-shape.js';
import { toFloat64 } from '../values.js';
import { kernelCodes, matmulSaturationError, saturates } from '../emulate.js';
import { int8Gemm, type Int8Codes } from '../kernels.js';
import type { MatMulPlan } from '../matmul-shape.js';

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

/** Wraps an exact integer to int32, as the spec allows accumulation to overflow only in 32 bits. */
export function toInt32(values: Float64Array): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = values[i] as number;
  return out;
}

/** Adds the emulated kernel's saturation error to exact int32 accumulators. */
export function addSaturation(acc: Int32Array, delta: Float64Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] = ((acc[i] as number) + (delta[i] as number)) | 0;
}

/** The zero point as the GEMM kernel takes it: one number, one per column of B, or undefined (not kernel-shaped). */
function kernelZero(zp: Tensor | undefined, columns: number | undefined): number | Float64Array | undefined {
  if (!zp) return 0;
  const z = toFloat64(zp);
  if (z.length === 1) return z[0] as number;
  return columns !== undefined && zp.dims.length === 1 && z.length === columns ? z : undefined;
}

/**
 * Σ_k (A − a_zp)(B − b_zp) of every output matrix of `plan`, int32 (wrapping as an int32
 * accumulator does). Runs the int8 GEMM kernel (kernels.ts) per matrix when the zero points are
 * kernel-shaped (A: one; B: one or one per column); any other broadcast zero point takes the
 * plain float64 loop, which is exact too.
 */
export function matmulInt32(
  a: Tensor,
  aZp: Tensor | undefined,
  b: Tensor,
  bZp: Tensor | undefined,
  plan: MatMulPlan,
  ctx: OpContext,
): Int32Array {
  const { M, K, N, aBatch, bBatch } = plan;
  const za = kernelZero(aZp, undefined);
  const zb = kernelZero(bZp, N);
  if (typeof za !== 'number' || zb === undefined)
    return toInt32(matmulF64(offsetByZeroPoint(a, aZp, true, ctx), offsetByZeroPoint(b, bZp, false, ctx), plan));
  const ad = a.data as Int8Codes;
  const bd = b.data as Int8Codes;
  const out = new Int32Array(aBatch.length * M * N);
  for (let t = 0; t < aBatch.length; t++) {
    const aMat = ad.subarray((aBatch[t] as number) * M * K, ((aBatch[t] as number) + 1) * M * K);
    const bMat = bd.subarray((bBatch[t] as number) * K * N, ((bBatch[t] as number) + 1) * K * N);
    out.set(int8Gemm(aMat, M, K, za, bMat, N, zb, ctx.threads), t * M * N);
  }
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
  const y = matmulInt32(a, inputs[2], b, inputs[3], plan, ctx);
  if (a.dtype === 'uint8' && saturates(ctx.emulate, a.dtype, b.dtype))
    addSaturation(y, matmulSaturationError(kernelCodes(a), toFloat64(b), plan));
  return [makeTensor('int32', plan.outDims, y)];
};

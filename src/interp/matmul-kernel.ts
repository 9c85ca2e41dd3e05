import type { MatMulPlan } from './matmul-shape.js';

/**
 * The obvious triple loop over every output matrix of `plan`, on exact values, accumulating in
 * float64 (exact for the integer ops; rounded once by the caller for float ones).
 */
export function matmulF64(a: Float64Array, b: Float64Array, plan: MatMulPlan): Float64Array {
  const { M, K, N, aBatch, bBatch } = plan;
  const batches = aBatch.length;
  const y = new Float64Array(batches * M * N);
  for (let t = 0; t < batches; t++) {
    const aBase = (aBatch[t] as number) * M * K;
    const bBase = (bBatch[t] as number) * K * N;
    const yBase = t * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (a[aBase + m * K + k] as number) * (b[bBase + k * N + n] as number);
        y[yBase + m * N + n] = acc;
      }
    }
  }
  return y;
}

/**
 * Per-element offsets of a zero point (or scale) for a matrix operand of `dims` [..., R, C]:
 * a scalar applies everywhere; a 1-D tensor of length `perVectorLen` is per row (`rows`) or per
 * column; anything else broadcasts NumPy-style ([D1, D2, M, 1] per row, [D1, D2, 1, N] per column).
 */
export function matrixParamIndex(
  dims: readonly number[],
  paramDims: readonly number[],
  rows: boolean,
  broadcast: (p: readonly number[], d: readonly number[]) => Int32Array,
): Int32Array {
  const count = dims.reduce((p, d) => p * d, 1);
  const pCount = paramDims.reduce((p, d) => p * d, 1);
  if (pCount === 1) return new Int32Array(count);
  if (paramDims.length === 1 && rows && dims.length >= 2) {
    const cols = dims[dims.length - 1] as number;
    const r = dims[dims.length - 2] as number;
    const map = new Int32Array(count);
    for (let i = 0; i < count; i++) map[i] = Math.floor(i / cols) % r;
    return map;
  }
  return broadcast(paramDims, dims);
}

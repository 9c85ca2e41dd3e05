/**
 * The one place the interpreter's quantized ops reach the compute kernels of kernels/. Ops hand
 * over plain 2-D problems (row-major codes, zero points, block constants) and get exact results
 * back; which kernel runs them is decided here alone.
 *
 * Today: the JS int8 GEMM of kernels/gemm-int8.ts (zero points folded through row/column sums,
 * bit-identical to its reference), and plain dequantize-then-multiply loops for the 4-bit block
 * and codebook weights, which compute what ONNX Runtime's fp32 paths compute (each weight
 * dequantized to fp32, products summed; here in float64 and rounded once by the caller).
 */
import { gemmInt8 } from '../kernels/gemm-int8.js';
import type { Int8Codes } from '../kernels/gemm-int8.ref.js';

export type { Int8Codes };

/**
 * C [M, N] int32 = Σ_k (A[m, k] − aZero) · (B[k, n] − bZero[n]): A [M, K] and B [K, N] row-major,
 * one zero point for A, one per tensor or per column for B. Exact while the sums fit int32
 * (K ≤ 33025 for any u8/s8 codes), wrapping modulo 2^32 beyond, as an int32 accumulator does.
 */
export function int8Gemm(
  a: Int8Codes,
  m: number,
  k: number,
  aZero: number,
  b: Int8Codes,
  n: number,
  bZero: number | ArrayLike<number>,
): Int32Array {
  return gemmInt8({ a, b, m, k, n, aZero, bZero });
}

/**
 * Y [M, N] = A [M, K] × W, W [K, N] given by column: `weight(n, out)` writes column n's K fp32
 * values into `out`. Sums in float64 (the caller rounds once to fp32). One column of W is
 * dequantized at a time, so the weight is never held in float whole.
 */
export function matmulByColumns(
  a: Float64Array,
  m: number,
  k: number,
  n: number,
  weight: (col: number, out: Float64Array) => void,
): Float64Array {
  const y = new Float64Array(m * n);
  const col = new Float64Array(k);
  for (let j = 0; j < n; j++) {
    weight(j, col);
    for (let i = 0; i < m; i++) {
      let acc = 0;
      const base = i * k;
      for (let t = 0; t < k; t++) acc += (a[base + t] as number) * (col[t] as number);
      y[i * n + j] = acc;
    }
  }
  return y;
}

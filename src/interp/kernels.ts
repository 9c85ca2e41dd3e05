/**
 * The one place the interpreter's quantized ops reach the compute kernels of kernels/. Ops hand
 * over plain 2-D problems (row-major codes, zero points, block constants) and get exact results
 * back; which kernel runs them is decided here alone.
 *
 * The int8 GEMM is kernels/'s (WebAssembly SIMD where the runtime validates it, else the JS twin;
 * both bit-identical to the reference loops). The 4-bit MatMulNBits and the MatMulBnb4 products
 * run on kernels/' GEMV (one fixed float32 summation order, within 1e-5 of ONNX Runtime's); the
 * 2- and 8-bit MatMulNBits weights take the plain dequantize-then-multiply loop below, which
 * computes what ONNX Runtime's fp32 path computes (each weight dequantized to fp32, products summed
 * in float64, rounded once).
 */
import { convInt8, prepareConvInt8Weights, preparedFor, type ConvInt8Weights } from '../kernels/conv-int8.js';
import type { ConvInt8Problem } from '../kernels/conv-int8.ref.js';
import {
  gemmInt8,
  gemvBnb4,
  gemvNBits,
  matmulNBitsInt8 as matmulNBitsInt8Kernel,
  takesInt8Path,
  type Int8Codes,
  type NBitsInt8Weights,
} from '../kernels/index.js';

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
  threads?: number | undefined,
): Int32Array {
  return gemmInt8(a, aZero, b, bZero, m, k, n, { threads });
}

/** A weight's GEMM form, kept while its codes live (the same initializer across a model's runs). */
const convWeights = new WeakMap<Int8Codes, ConvInt8Weights>();

/** ONNX ConvInteger's int32 convolution (kernels/conv-int8.ref.ts states the problem). */
export function int8Conv(p: ConvInt8Problem, threads?: number | undefined): Int32Array {
  let prepared = convWeights.get(p.w);
  if (!prepared || !preparedFor(prepared, p)) {
    prepared = prepareConvInt8Weights(p.w, p.wDims, p.wZero, p.group);
    convWeights.set(p.w, prepared);
  }
  return convInt8(p, prepared, { threads });
}

/**
 * MatMulNBits weights as ONNX Runtime stores them (kernels/' NBitsInt8Weights): W [K, N] held by
 * column n; W[k, n] = fp32((code − zero point) · scale). kBlocks = ⌈K / blockSize⌉.
 */
export type NBitsMatrix = NBitsInt8Weights;

/**
 * MatMulBnb4 weights: W taken as [N, K] flattened row-major in blocks of `blockSize`, two codes a
 * byte with the first in the HIGH nibble; W[k, n] = fp32(table[code] · absmax of the block).
 */
export interface Bnb4Matrix {
  readonly K: number;
  readonly N: number;
  readonly blockSize: number;
  readonly packed: Uint8Array;
  readonly absmax: Float32Array;
  readonly table: Float32Array;
}

/** The `bits`-wide code at position j of a run of codes packed from `base`, lowest bits first. */
function codeAt(bytes: Uint8Array, base: number, j: number, bits: number): number {
  const bit = j * bits;
  return ((bytes[base + (bit >> 3)] as number) >> (bit & 7)) & ((1 << bits) - 1);
}

/** Y [M, N] = X [M, K] × W for a MatMulNBits weight, fp32 out. */
export function matmulNBits(x: Float32Array, m: number, w: NBitsMatrix, threads?: number | undefined): Float32Array {
  if (w.bits === 4) return gemvNBits(x, m, w, { threads });
  const { K, N, bits, blockSize: bs, packed, scales, zeroPoints } = w;
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const mid = 1 << (bits - 1);
  const y = matmulByColumns(x, m, K, N, (n, col) => {
    for (let blk = 0; blk < kBlocks; blk++) {
      const p = n * kBlocks + blk;
      const z = zeroPoints ? codeAt(zeroPoints, n * zpRow, blk, bits) : mid;
      const scale = scales[p] as number;
      const end = Math.min(bs, K - blk * bs);
      for (let j = 0; j < end; j++) col[blk * bs + j] = Math.fround((codeAt(packed, p * blob, j, bits) - z) * scale);
    }
  });
  return Float32Array.from(y);
}

/**
 * Y [M, N] = X [M, K] × W for a MatMulNBits weight at accuracy_level 4: where ONNX Runtime's CPU
 * kernel quantizes X to int8 per block for this bit width and block size, that product
 * (kernels/nbits-int8.ref.ts; kernels/index.ts runs it on the int8 GEMM); elsewhere ORT computes as at level 0, and so does this.
 */
export function matmulNBitsInt8(
  x: Float32Array,
  m: number,
  w: NBitsMatrix,
  threads?: number | undefined,
): Float32Array {
  return takesInt8Path(w.bits, w.blockSize)
    ? matmulNBitsInt8Kernel(x, m, w, { threads })
    : matmulNBits(x, m, w, threads);
}

/**
 * A MatMulNBits weight whose zero points are floats (unpacked, [N][kBlocks], in code units), as
 * HQQ and the super-block schemes store it. ONNX Runtime's CPU kernel never packs such a weight
 * (contrib_ops/cpu/quantization/matmul_nbits.cc: PrePack returns early on a non-uint8 zero
 * point), so it runs its dequantize-then-SGEMM path whatever the accuracy_level: each weight
 * becomes fp32(fp32(code · scale) + fp32(−scale · zero)) (matmul_nbits_impl.cc, two roundings:
 * the adjustment is formed once per block, then added), and the product is an fp32 SGEMM.
 */
export interface FloatZeroNBitsMatrix {
  readonly K: number;
  readonly N: number;
  readonly bits: 2 | 4;
  readonly blockSize: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zeros: Float32Array;
  /**
   * MatMulNBits' g_idx: the block whose scale and zero point row k takes (its code stays where
   * row k is stored). ORT dequantizes such a weight the same way (4-bit codes only).
   */
  readonly gIdx?: Int32Array | undefined;
}

/** Y [M, N] = X [M, K] × W for a float-zero-point MatMulNBits weight (see above), fp32 out. */
export function matmulNBitsFloatZero(x: Float32Array, m: number, w: FloatZeroNBitsMatrix): Float32Array {
  const { K, N, bits, blockSize: bs, packed, scales, zeros, gIdx } = w;
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const f = Math.fround;
  const y = matmulByColumns(x, m, K, N, (n, col) => {
    for (let k = 0; k < K; k++) {
      const stored = Math.floor(k / bs);
      const p = n * kBlocks + (gIdx ? (gIdx[k] as number) : stored);
      const scale = scales[p] as number;
      const code = codeAt(packed, (n * kBlocks + stored) * blob, k % bs, bits);
      col[k] = f(f(code * scale) + f(-scale * (zeros[p] as number)));
    }
  });
  return Float32Array.from(y);
}

/** Y [M, N] = X [M, K] × W for a MatMulBnb4 weight, fp32 out. */
export function matmulBnb4(x: Float32Array, m: number, w: Bnb4Matrix, threads?: number | undefined): Float32Array {
  return gemvBnb4(x, m, w, { threads });
}

/**
 * Y [M, N] = A [M, K] × W, W [K, N] given by column: `weight(n, out)` writes column n's K fp32
 * values into `out`. Sums in float64 (the caller rounds once to fp32). One column of W is
 * dequantized at a time, so the weight is never held in float whole.
 */
function matmulByColumns(
  a: ArrayLike<number>,
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

import { roundHalfEven } from '../formats/rounding.js';

/**
 * MatMulNBits at accuracy_level 4, as ONNX Runtime's CPU kernel computes it (MLAS's CompInt8
 * path, onnxruntime/core/mlas/lib/qnbitgemm.cpp and the QuantizeARow…_CompInt8 quantizers of
 * sqnbitgemm_kernel_avx2.cpp / _avx512.cpp, which agree element for element):
 *
 *   A is cut per row into blocks of block_size along K (the last block shorter); in each block
 *     amax  = max |a|
 *     scale = fp32(amax / 127)
 *     q     = round_half_even(fp32(a · fp32(127 / amax)))     (q = 0 when amax = 0)
 *   so q ∈ [−127, 127] (the reciprocal is taken from amax in one division, not 1 / scale: the
 *   two differ by an ulp, enough to move a code that lands on .5).
 *   Y[m, n] = Σ_blocks scaleA · scaleB · Σ_k q · (code − zero point)
 *   where the integer sums are exact (int32) and zero point is 2^(bits−1) when absent.
 *
 * ORT evaluates the float part as scaleA·scaleB·Σ q·code − scaleA·Σq · scaleB·zero point, in
 * float32 and in an order its SIMD kernels choose (it differs between AVX2, AVX-512 and VNNI
 * machines); here it is summed in float64 and rounded once, the value ORT's orders scatter
 * around. How far they may scatter: test/nbits-int8.test.ts derives the bound.
 */

/** The block-quantized rows of A: codes [M, K], one scale and one code sum per (row, block). */
export interface Int8BlockRows {
  readonly codes: Int8Array;
  readonly scales: Float32Array;
  readonly sums: Int32Array;
}

const f = Math.fround;

/** A [M, K] float32 quantized to int8 per row and block of `blockSize` along K, as MLAS does. */
export function quantizeRowsInt8Blocks(x: Float32Array, m: number, k: number, blockSize: number): Int8BlockRows {
  const kBlocks = Math.ceil(k / blockSize);
  const codes = new Int8Array(m * k);
  const scales = new Float32Array(m * kBlocks);
  const sums = new Int32Array(m * kBlocks);
  for (let row = 0; row < m; row++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const start = row * k + blk * blockSize;
      const end = row * k + Math.min(k, (blk + 1) * blockSize);
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(x[i] as number));
      const inverse = amax !== 0 ? f(127 / amax) : 0;
      let sum = 0;
      for (let i = start; i < end; i++) {
        const q = roundHalfEven(f((x[i] as number) * inverse));
        codes[i] = q;
        sum += q;
      }
      scales[row * kBlocks + blk] = f(amax / 127);
      sums[row * kBlocks + blk] = sum;
    }
  }
  return { codes, scales, sums };
}

/**
 * MatMulNBits weights (the layout of ONNX Runtime's contrib op): `packed` uint8
 * [N][kBlocks][blockSize·bits/8], a block's codes packed along K lowest bits first; `scales`
 * [N][kBlocks]; `zeroPoints` uint8 [N][⌈kBlocks·bits/8⌉] packed alike (absent: 2^(bits−1)).
 */
export interface NBitsInt8Weights {
  readonly K: number;
  readonly N: number;
  readonly bits: 2 | 4 | 8;
  readonly blockSize: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zeroPoints?: Uint8Array | undefined;
}

/** The `bits`-wide code at position j of a run of codes packed from `base`, lowest bits first. */
function codeAt(bytes: Uint8Array, base: number, j: number, bits: number): number {
  const bit = j * bits;
  return ((bytes[base + (bit >> 3)] as number) >> (bit & 7)) & ((1 << bits) - 1);
}

/** Y [M, N] float32 = X [M, K] · W at accuracy_level 4 (see above): the plain loops. */
export function matmulNBitsInt8Ref(x: Float32Array, m: number, w: NBitsInt8Weights): Float32Array {
  const { K, N, bits, blockSize: bs, packed, scales, zeroPoints } = w;
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const mid = 1 << (bits - 1);
  const a = quantizeRowsInt8Blocks(x, m, K, bs);
  const y = new Float64Array(m * N);
  const w8 = new Int16Array(bs);
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < kBlocks; blk++) {
      const p = n * kBlocks + blk;
      const z = zeroPoints ? codeAt(zeroPoints, n * zpRow, blk, bits) : mid;
      const len = Math.min(bs, K - blk * bs);
      for (let j = 0; j < len; j++) w8[j] = codeAt(packed, p * blob, j, bits) - z;
      const scaleB = scales[p] as number;
      for (let row = 0; row < m; row++) {
        const base = row * K + blk * bs;
        let dot = 0;
        for (let j = 0; j < len; j++) dot += (a.codes[base + j] as number) * (w8[j] as number);
        // Exact in float64: |dot| < 2^23, the scale product has 48 significant bits.
        y[row * N + n] = (y[row * N + n] as number) + (a.scales[row * kBlocks + blk] as number) * scaleB * dot;
      }
    }
  }
  return Float32Array.from(y);
}

/**
 * Whether ONNX Runtime 1.30's x86-64 CPU kernel takes the int8 path for a MatMulNBits weight
 * of `bits` in blocks of `blockSize` at accuracy_level 4 (MlasIsQNBitGemmAvailable for
 * CompInt8); where not, it computes as at level 0. Measured the same on AVX-512 VNNI and on
 * AVX2 (test/nbits-int8.test.ts holds it to ORT): 4- and 8-bit in every block size ORT accepts
 * (16…256), 2-bit in blocks of 32, 64 and 128 only. Levels 1–3 are level 0 on x86-64.
 */
export function takesInt8Path(bits: number, blockSize: number): boolean {
  if (bits === 2) return blockSize === 32 || blockSize === 64 || blockSize === 128;
  return (bits === 4 || bits === 8) && [16, 32, 64, 128, 256].includes(blockSize);
}

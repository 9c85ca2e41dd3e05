import type { Tensor } from '../tensor/tensor.js';
import { unravel } from '../kernels/conv-int8.ref.js';
import { convSizes, inputOffset, type ConvPlan } from './conv-plan.js';
import type { MatMulPlan } from './matmul-shape.js';
import { toFloat64 } from './values.js';

/**
 * Integer arithmetic of a particular CPU kernel, emulated so that a test on any machine sees what
 * ONNX Runtime computes on that CPU.
 *
 * 'avx2-u8s8': ONNX Runtime's x86 u8×s8 GEMM without VNNI (AVX2, and AVX-512 without VNNI) uses
 * `vpmaddubsw`: the products of adjacent elements (k, k+1), k even, along the reduction axis K
 * are added in int16 with saturation, then pairs are summed in int32 (`vpmaddwd` + `vpaddd`).
 * K is zero-padded to the packing width, so an odd K pairs its last element with 0. The
 * products are of the raw codes — u8 activation × s8 weight — because zero points are corrected
 * afterwards through row/column sums; s8 activations are flipped to u8 first (x ^ 0x80, with the
 * zero point flipped alike), so they saturate the same way. A u8 weight takes the U8U8 kernel,
 * which widens to int16 and does not saturate.
 */
export const EMULATIONS = ['avx2-u8s8'] as const;
export type Emulation = (typeof EMULATIONS)[number];

export function isEmulation(s: string): s is Emulation {
  return (EMULATIONS as readonly string[]).includes(s);
}

const INT16_MIN = -32768;
const INT16_MAX = 32767;

/**
 * Σ over pairs (k, k+1), k even, of sat16(a_k·b_k + a_{k+1}·b_{k+1}) − (a_k·b_k + a_{k+1}·b_{k+1}):
 * what the saturating kernel's dot product differs from the exact one by (0 when nothing saturates).
 */
export function pairSaturationError(
  a: Float64Array,
  aBase: number,
  aStep: number,
  b: Float64Array,
  bBase: number,
  bStep: number,
  K: number,
): number {
  let err = 0;
  for (let k = 0; k < K; k += 2) {
    let p = (a[aBase + k * aStep] as number) * (b[bBase + k * bStep] as number);
    if (k + 1 < K) p += (a[aBase + (k + 1) * aStep] as number) * (b[bBase + (k + 1) * bStep] as number);
    if (p > INT16_MAX) err += INT16_MAX - p;
    else if (p < INT16_MIN) err += INT16_MIN - p;
  }
  return err;
}

/** Whether an (activation, weight) pair of dtypes runs on the saturating u8×s8 kernel. */
export function saturates(
  emulate: Emulation | undefined,
  activation: Tensor['dtype'],
  weight: Tensor['dtype'],
): boolean {
  return emulate === 'avx2-u8s8' && (activation === 'uint8' || activation === 'int8') && weight === 'int8';
}

/** The u8 codes the kernel multiplies: u8 as is, s8 + 128 (x ^ 0x80). */
export function kernelCodes(t: Tensor): Float64Array {
  const v = Float64Array.from(toFloat64(t));
  if (t.dtype === 'int8') for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) + 128;
  return v;
}

/** Per output element of a MatMul (numpy shapes), the saturation error of A's row · B's column. */
export function matmulSaturationError(a: Float64Array, b: Float64Array, plan: MatMulPlan): Float64Array {
  const { M, K, N, aBatch, bBatch } = plan;
  const out = new Float64Array(aBatch.length * M * N);
  for (let t = 0; t < aBatch.length; t++) {
    const aBase = (aBatch[t] as number) * M * K;
    const bBase = (bBatch[t] as number) * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++)
        out[(t * M + m) * N + n] = pairSaturationError(a, aBase + m * K, 1, b, bBase + n, N, K);
    }
  }
  return out;
}

/**
 * The saturation error of each output of a convolution whose reduction axis is laid out in
 * `order`: 'hwc' = (kernel position, then channel) — ONNX Runtime runs QLinearConv (and the
 * Conv it fuses from QDQ) on x86 in NHWC, so its K runs over (kh, kw, c); 'chw' = (channel,
 * then kernel position), the NCHW im2col of its ConvInteger. `x` holds kernel codes; positions in
 * the padding read `xPad` (the zero-point code: quantized im2col pads with the zero point so
 * that x − zp is 0 there). Output [N, M, out spatial...].
 */
export function convSaturationError(
  x: Float64Array,
  xPad: number,
  w: Float64Array,
  plan: ConvPlan,
  order: 'hwc' | 'chw',
): Float64Array {
  const { batch, inChannels, outChannels, group, inSpatial, kernel, outSpatial } = plan;
  const nSpatial = inSpatial.length;
  const { cPerGroup, mPerGroup, inSize, kSize, outSize } = convSizes(plan);
  const K = cPerGroup * kSize;
  // Position in the reduction vector of (channel cg, kernel offset k).
  const slot = (cg: number, k: number) => (order === 'hwc' ? k * cPerGroup + cg : cg * kSize + k);
  const wv = new Float64Array(outChannels * K);
  for (let m = 0; m < outChannels; m++) {
    for (let cg = 0; cg < cPerGroup; cg++)
      for (let k = 0; k < kSize; k++) wv[m * K + slot(cg, k)] = w[(m * cPerGroup + cg) * kSize + k] as number;
  }
  const out = new Float64Array(batch * outChannels * outSize);
  const xv = new Float64Array(K);
  const outIdx = new Int32Array(nSpatial);
  const kIdx = new Int32Array(nSpatial);
  for (let n = 0; n < batch; n++) {
    for (let g = 0; g < group; g++) {
      for (let o = 0; o < outSize; o++) {
        unravel(o, outSpatial, outIdx);
        for (let k = 0; k < kSize; k++) {
          unravel(k, kernel, kIdx);
          const off = inputOffset(plan, outIdx, kIdx);
          for (let cg = 0; cg < cPerGroup; cg++) {
            xv[slot(cg, k)] = off >= 0 ? (x[(n * inChannels + g * cPerGroup + cg) * inSize + off] as number) : xPad;
          }
        }
        for (let mg = 0; mg < mPerGroup; mg++) {
          const m = g * mPerGroup + mg;
          out[(n * outChannels + m) * outSize + o] = pairSaturationError(xv, 0, 1, wv, m * K, 1, K);
        }
      }
    }
  }
  return out;
}

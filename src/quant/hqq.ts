import { ROUNDER } from '../formats/rounding.js';
import { NonFiniteWeight } from './non-finite-weight.js';

/**
 * HQQ, Half-Quadratic Quantization (Badri & Shaji 2023, "Half-Quadratic Quantization of Large
 * Machine Learning Models"; the `optimize_weights_proximal_legacy` solver of the hqq package):
 * data-free asymmetric group quantization whose zero point is optimised, the scale fixed, for a
 * sparsity-promoting ℓp (p < 1) error instead of the squared one, so a few outliers do not pull
 * every other weight's rounding.
 *
 * HQQ writes W ≈ (Wq − z) / s with s the inverse scale. Start: per group, min-max (s = qmax /
 * (max − min), z = −min · s, z not rounded). Each step, over the whole tensor:
 *   Wq = clamp(round(W·s + z), 0, qmax);  Wr = (Wq − z) / s
 *   We = shrink_p(W − Wr, β)  with shrink_p(x) = sign(x) · max(0, |x| − |x|^(p−1) / β)
 *   z  = mean over the group of (Wq − (W − We)·s)
 *   β ← κ·β
 * and stops when mean|W − Wr| stops falling (at most `iterations` steps). The hqq package keeps
 * the zero point of the step that failed to improve; we keep the one whose error was measured
 * best (one more evaluation when every step improved), which is never worse on that measure.
 *
 * The zero point is fractional, so the result is stored as MatMulNBits with float zero points
 * (unpacked, A's element type; ONNX Runtime 1.30 runs them for 2- and 4-bit codes, not 8 — checked
 * in test/low-bit.test.ts). Codes are in 0 … 2^codeBits − 1 of a `bits`-wide storage; dequantized
 * W = (code − zero) · scale with scale = 1/s in float32.
 */

export interface HqqOptions {
  readonly bits: 2 | 4 | 8;
  /** Levels 2^codeBits (default bits), stored in `bits`-wide codes. */
  readonly codeBits?: number | undefined;
  readonly blockSize: number;
  /** ℓp norm of the error (default 0.7). */
  readonly p?: number;
  /** Initial β (default 10) and its growth per step (default 1.01). */
  readonly beta?: number;
  readonly kappa?: number;
  /** At most this many steps (default 20). */
  readonly iterations?: number;
}

/** A MatMulNBits weight with float zero points, as HQQ and the super-block scheme make it. */
export interface FloatZeroNBitsWeights {
  readonly K: number;
  readonly N: number;
  readonly kBlocks: number;
  /** MatMulNBits B: [N · kBlocks · blockSize·bits/8], first code in the low bits. */
  readonly packed: Uint8Array;
  /** [N · kBlocks] */
  readonly scales: Float32Array;
  /** Float zero points [N · kBlocks], in code units. */
  readonly zeros: Float32Array;
  /** Unpacked codes [N · kBlocks · blockSize] (padding holds round(zero), dequantizing to ≈ 0). */
  readonly codes: Uint8Array;
  readonly signalSq: number;
  readonly noiseSq: number;
}

export interface HqqWeights extends FloatZeroNBitsWeights {
  /** Steps run, and mean|W − Wr| at the start and at the end. */
  readonly steps: number;
  readonly startError: number;
  readonly error: number;
}

const f = Math.fround;
const SCALE_MAX = 2e4; // the hqq package clamps the inverse scale of a near-constant group here

/** sign(x) · max(0, |x| − |x|^(p−1) / β): the ℓp proximal step HQQ uses (0 stays 0). */
export function shrinkLp(x: number, beta: number, p: number): number {
  const a = Math.abs(x);
  if (a === 0) return 0;
  const r = a - a ** (p - 1) / beta;
  return r > 0 ? (x < 0 ? -r : r) : 0;
}

/**
 * HQQ on W given as rows of its transpose: `rowOf(n, out)` fills out[0..K) with output column n
 * (MatMul B [K, N] read down a column), as quant/nbits-quant.ts quantizeNBits reads it.
 */
export function hqqQuantize(
  K: number,
  N: number,
  rowOf: (n: number, out: Float32Array) => void,
  o: HqqOptions,
): HqqWeights {
  const bs = o.blockSize;
  const kBlocks = Math.ceil(K / bs);
  const qmax = (1 << (o.codeBits ?? o.bits)) - 1;
  const p = o.p ?? 0.7;
  const kappa = o.kappa ?? 1.01;
  const iterations = o.iterations ?? 20;
  const groups = N * kBlocks;
  const w = new Float32Array(N * K);
  const row = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    rowOf(n, row);
    for (let k = 0; k < K; k++) {
      const v = row[k] as number;
      if (!Number.isFinite(v)) throw new NonFiniteWeight(n, k, v);
    }
    w.set(row, n * K);
  }
  // Inverse scales s and zero points z per group [n · kBlocks + b].
  const s = new Float64Array(groups);
  let z = new Float64Array(groups);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let k = b * bs, end = Math.min(K, k + bs); k < end; k++) {
        const v = w[n * K + k] as number;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const g = n * kBlocks + b;
      s[g] = Math.min(SCALE_MAX, hi > lo ? qmax / (hi - lo) : SCALE_MAX);
      z[g] = -lo * (s[g] as number);
    }
  }
  const total = Math.max(1, N * K);
  let beta = o.beta ?? 10;
  let best = Infinity;
  let bestZ = z;
  let startError = NaN;
  let steps = 0;
  const next = new Float64Array(groups);
  for (let step = 0; step <= iterations; step++) {
    let errSum = 0;
    next.fill(0);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const g = n * kBlocks + Math.floor(k / bs);
        const si = s[g] as number;
        const zi = z[g] as number;
        const v = w[n * K + k] as number;
        let q = v * si + zi + ROUNDER - ROUNDER;
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        const r = (q - zi) / si;
        errSum += Math.abs(v - r);
        const e = shrinkLp(v - r, beta, p);
        next[g] = (next[g] as number) + (q - (v - e) * si);
      }
    }
    const err = errSum / total;
    if (step === 0) startError = err;
    if (!(err < best)) break;
    best = err;
    bestZ = z;
    steps = step;
    if (step === iterations) break;
    const zNew = new Float64Array(groups);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < kBlocks; b++) {
        const g = n * kBlocks + b;
        zNew[g] = (next[g] as number) / Math.min(bs, K - b * bs);
      }
    }
    z = zNew;
    beta *= kappa;
  }
  // Stored as float32; the codes are rounded against exactly the stored values.
  const scales = new Float32Array(groups);
  const zeros = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    scales[g] = f(1 / (s[g] as number));
    zeros[g] = f(bestZ[g] as number);
  }
  const bits = o.bits;
  const per = 8 / bits;
  const blob = (bs * bits) / 8;
  const packed = new Uint8Array(groups * blob);
  const codes = new Uint8Array(groups * bs);
  let signalSq = 0;
  let noiseSq = 0;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const g = n * kBlocks + b;
      const sc = scales[g] as number;
      const zi = zeros[g] as number;
      const inv = s[g] as number;
      for (let i = 0; i < bs; i++) {
        const k = b * bs + i;
        let q: number;
        if (k < K) {
          const v = w[n * K + k] as number;
          q = v * inv + zi + ROUNDER - ROUNDER;
          q = q < 0 ? 0 : q > qmax ? qmax : q;
          signalSq += v * v;
          noiseSq += (v - f((q - zi) * sc)) ** 2;
        } else {
          const zr = zi + ROUNDER - ROUNDER;
          q = zr < 0 ? 0 : zr > qmax ? qmax : zr;
        }
        codes[g * bs + i] = q;
        const byte = g * blob + Math.floor(i / per);
        packed[byte] = (packed[byte] as number) | (q << ((i % per) * bits));
      }
    }
  }
  return { K, N, kBlocks, packed, scales, zeros, codes, signalSq, noiseSq, steps, startError, error: best };
}

/** W[k, n] as MatMulNBits dequantizes it with float zero points, row-major [K, N]. */
export function dequantizeHqq(
  w: Pick<HqqWeights, 'K' | 'N' | 'kBlocks' | 'codes' | 'scales' | 'zeros'>,
  blockSize: number,
): Float32Array {
  const { K, N, kBlocks, codes, scales, zeros } = w;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const g = n * kBlocks + Math.floor(k / blockSize);
      out[k * N + n] = f(
        ((codes[g * blockSize + (k % blockSize)] as number) - (zeros[g] as number)) * (scales[g] as number),
      );
    }
  }
  return out;
}

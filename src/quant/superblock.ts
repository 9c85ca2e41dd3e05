import { ROUNDER } from '../formats/rounding.js';
import { decodeFloat16, encodeFloat16 } from '../formats/float16.js';
import type { FloatZeroNBitsWeights } from './hqq.js';
import { NonFiniteWeight } from './non-finite-weight.js';
import type { GptqResult, GroupParams, GroupQuantizer } from './gptq.js';

/**
 * Super-block scales, the idea of llama.cpp's k-quants (Q4_K): each sub-block of `blockSize`
 * weights is asymmetric, w ≈ a·q − m (q in 0 … 2^codeBits − 1, a > 0, m ≥ 0), and its a and m
 * are themselves quantized to 6 bits under one fp16 pair (d, dmin) per super-block of 256
 * weights: a = d·sc, m = dmin·mi with sc, mi in 0 … 63. Per weight: codeBits + 12/blockSize +
 * 32/256 bits (Q4_K at block 32: 4.5), against 4 + 32/32 (+ zero points) for a float32 scale per
 * block of 32.
 *
 * ONNX Runtime has no such format, so the model stores what it runs: MatMulNBits (4-bit codes)
 * with the dequantized a as float scale and m/a as float zero point, (q − m/a)·a = a·q − m — the
 * same numbers, in float32 tensors (bigger than the true bytes; `trueBytes` is what a packed
 * k-quant file holds, reported beside it).
 *
 * Sub-block fit: min-max start over [min(w, 0), max(w)], then two least-squares steps for (a, m)
 * with the codes fixed (the asymmetric refit of quant/nbits-quant.ts, with m continuous), keeping
 * the best. Then d = max a / 63, dmin = max m / 63 (rounded to fp16), the 6-bit codes rounded, and
 * every weight re-coded against the a, m it will actually be dequantized with.
 */

export interface SuperBlockOptions {
  /** Storage bits (MatMulNBits `bits`). */
  readonly bits: 4;
  readonly codeBits?: number | undefined;
  /** Sub-block size (MatMulNBits block_size). */
  readonly blockSize: number;
  /** Weights per super-block along K (default 256). */
  readonly superBlock?: number;
}

/** Scales are a = d·sc per sub-block, zero points m / a. */
export interface SuperBlockWeights extends FloatZeroNBitsWeights {
  /** Bytes of the packed k-quant form: codes, 6-bit sc and mi, fp16 d and dmin per super-block. */
  readonly trueBytes: number;
}

const f = Math.fround;
const SIX_BIT = 63;

/** Best (a, m) of w ≈ a·q − m for one sub-block, into out[0..1]. */
export function fitSubBlock(x: Float32Array, off: number, len: number, qmax: number, out: Float64Array): void {
  let lo = 0;
  let hi = -Infinity;
  for (let i = off; i < off + len; i++) {
    const v = x[i] as number;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  hi = Math.max(hi, lo);
  let a = (hi - lo) / qmax;
  let m = -lo;
  if (!(a > 0)) {
    out[0] = 0;
    out[1] = m;
    return;
  }
  let bestA = a;
  let bestM = m;
  let bestErr = Infinity;
  for (let step = 0; step < 3; step++) {
    let sq = 0;
    let sqq = 0;
    let sx = 0;
    let sxq = 0;
    let err = 0;
    for (let i = off; i < off + len; i++) {
      const v = x[i] as number;
      let q = (v + m) / a + ROUNDER - ROUNDER;
      q = q < 0 ? 0 : q > qmax ? qmax : q;
      const e = v - (a * q - m);
      err += e * e;
      sq += q;
      sqq += q * q;
      sx += v;
      sxq += v * q;
    }
    if (err < bestErr) {
      bestErr = err;
      bestA = a;
      bestM = m;
    }
    // Least squares v ≈ a·q − m: a = (nΣvq − ΣvΣq)/(nΣq² − (Σq)²), m = (aΣq − Σv)/n.
    const den = len * sqq - sq * sq;
    if (!(den > 0)) break;
    const na = (len * sxq - sx * sq) / den;
    if (!(na > 0)) break;
    a = na;
    m = Math.max(0, (a * sq - sx) / len);
  }
  out[0] = bestA;
  out[1] = bestM;
}

const toHalf = (v: number) => decodeFloat16(encodeFloat16(v));

export function quantizeSuperBlocks(
  K: number,
  N: number,
  rowOf: (n: number, out: Float32Array) => void,
  o: SuperBlockOptions,
): SuperBlockWeights {
  const bs = o.blockSize;
  const sbs = o.superBlock ?? 256;
  const per = Math.max(1, Math.floor(sbs / bs)); // sub-blocks per super-block
  const kBlocks = Math.ceil(K / bs);
  const kSuper = Math.ceil(kBlocks / per);
  const qmax = (1 << (o.codeBits ?? o.bits)) - 1;
  const bits = o.bits;
  const blob = (bs * bits) / 8;
  const packed = new Uint8Array(N * kBlocks * blob);
  const codes = new Uint8Array(N * kBlocks * bs);
  const scales = new Float32Array(N * kBlocks);
  const zeros = new Float32Array(N * kBlocks);
  const row = new Float32Array(K);
  const fit = new Float64Array(2);
  const a = new Float64Array(kBlocks);
  const m = new Float64Array(kBlocks);
  let signalSq = 0;
  let noiseSq = 0;
  for (let n = 0; n < N; n++) {
    rowOf(n, row);
    for (let b = 0; b < kBlocks; b++) {
      const len = Math.min(bs, K - b * bs);
      fitSubBlock(row, b * bs, len, qmax, fit);
      a[b] = fit[0] as number;
      m[b] = fit[1] as number;
    }
    for (let s = 0; s < kSuper; s++) {
      const b0 = s * per;
      const b1 = Math.min(kBlocks, b0 + per);
      let amax = 0;
      let mmax = 0;
      for (let b = b0; b < b1; b++) {
        amax = Math.max(amax, a[b] as number);
        mmax = Math.max(mmax, m[b] as number);
      }
      const d = toHalf(amax / SIX_BIT);
      const dmin = toHalf(mmax / SIX_BIT);
      for (let b = b0; b < b1; b++) {
        const sc = d > 0 ? Math.min(SIX_BIT, Math.max(0, Math.round((a[b] as number) / d))) : 0;
        const mi = dmin > 0 ? Math.min(SIX_BIT, Math.max(0, Math.round((m[b] as number) / dmin))) : 0;
        const aq = f(d * sc);
        const mq = dmin * mi;
        const p = n * kBlocks + b;
        scales[p] = aq;
        zeros[p] = aq > 0 ? f(mq / aq) : 0;
        const zq = zeros[p] as number;
        const len = Math.min(bs, K - b * bs);
        for (let i = 0; i < bs; i++) {
          let q = 0;
          if (i < len && aq > 0) {
            const v = row[b * bs + i] as number;
            q = (v + mq) / aq + ROUNDER - ROUNDER;
            q = q < 0 ? 0 : q > qmax ? qmax : q;
          } else if (aq > 0) {
            const zr = zq + ROUNDER - ROUNDER;
            q = zr < 0 ? 0 : zr > qmax ? qmax : zr;
          }
          if (i < len) {
            const v = row[b * bs + i] as number;
            if (!Number.isFinite(v)) throw new NonFiniteWeight(n, b * bs + i, v);
            signalSq += v * v;
            noiseSq += (v - f((q - zq) * aq)) ** 2;
          }
          codes[p * bs + i] = q;
          const byte = p * blob + Math.floor(i / (8 / bits));
          packed[byte] = (packed[byte] as number) | (q << ((i % (8 / bits)) * bits));
        }
      }
    }
  }
  const trueBytes = superBlockTrueBytes(K, N, o);
  return { K, N, kBlocks, packed, scales, zeros, codes, signalSq, noiseSq, trueBytes };
}

/** Bytes of the packed k-quant form: codes, 6-bit sc and mi per sub-block, fp16 d and dmin per super-block. */
export function superBlockTrueBytes(K: number, N: number, o: SuperBlockOptions): number {
  const kBlocks = Math.ceil(K / o.blockSize);
  const per = Math.max(1, Math.floor((o.superBlock ?? 256) / o.blockSize));
  const kSuper = Math.ceil(kBlocks / per);
  return Math.ceil((N * K * (o.codeBits ?? o.bits)) / 8) + Math.ceil((N * kBlocks * 12) / 8) + N * kSuper * 4;
}

/**
 * The k-quant format as GPTQ's group quantizer (quant/gptq.ts): when GPTQ reaches a super-block's
 * first sub-block, every sub-block of it is fitted on the weights as updated so far and d, dmin
 * (fp16) fixed from them; each sub-block's (a, m) is fitted again when GPTQ reaches it — on the
 * values GPTQ has pushed its predecessors' errors into — and rounded to 6 bits under that d,
 * dmin. Parameters as MatMulNBits stores them: scale a, float zero point m / a.
 */
export function superBlockGroupQuantizer(o: SuperBlockOptions, K: number, N: number): GroupQuantizer {
  const bs = o.blockSize;
  const per = Math.max(1, Math.floor((o.superBlock ?? 256) / bs));
  const qmax = (1 << (o.codeBits ?? o.bits)) - 1;
  const d = new Float64Array(N);
  const dmin = new Float64Array(N);
  const fit = new Float64Array(2);
  const sub = new Float32Array(bs);
  const kBlocks = Math.ceil(K / bs);
  return {
    blockSize: bs,
    encodeBlockScale() {
      throw new Error('superBlockGroupQuantizer chooses groups through chooseGroup');
    },
    chooseGroup(b: number, n: number, values: Float32Array, current: (k: number) => number, out: GroupParams) {
      if (b % per === 0) {
        let amax = 0;
        let mmax = 0;
        for (let sb = b; sb < Math.min(kBlocks, b + per); sb++) {
          const len = Math.min(bs, K - sb * bs);
          for (let i = 0; i < len; i++) sub[i] = current(sb * bs + i);
          fitSubBlock(sub, 0, len, qmax, fit);
          amax = Math.max(amax, fit[0] as number);
          mmax = Math.max(mmax, fit[1] as number);
        }
        d[n] = toHalf(amax / SIX_BIT);
        dmin[n] = toHalf(mmax / SIX_BIT);
      }
      fitSubBlock(values, 0, values.length, qmax, fit);
      const dn = d[n] as number;
      const mn = dmin[n] as number;
      const sc = dn > 0 ? Math.min(SIX_BIT, Math.max(0, Math.round((fit[0] as number) / dn))) : 0;
      const mi = mn > 0 ? Math.min(SIX_BIT, Math.max(0, Math.round((fit[1] as number) / mn))) : 0;
      const aq = f(dn * sc);
      out.scale = aq;
      out.zero = aq > 0 ? f((mn * mi) / aq) : 0;
    },
    quantizeValue(v: number, s: number, z: number) {
      if (!(s > 0)) return 0;
      const q = v / s + z + ROUNDER - ROUNDER;
      return q < 0 ? 0 : q > qmax ? qmax : q;
    },
    // MatMulNBits with float zero points: (code − zero) · scale.
    dequantize: (c: number, s: number, z: number) => f((c - z) * s),
  };
}

/** GPTQ's codes and parameters (quant/gptq.ts GptqResult) in the form quantizeSuperBlocks returns. */
export function superBlockWeightsFrom(
  r: Omit<GptqResult, 'dampUsed'>,
  w: Float32Array,
  o: SuperBlockOptions,
): SuperBlockWeights {
  const { K, N, kBlocks } = r;
  const bs = o.blockSize;
  const bits = o.bits;
  const qmax = (1 << (o.codeBits ?? bits)) - 1;
  const blob = (bs * bits) / 8;
  const packed = new Uint8Array(N * kBlocks * blob);
  const codes = new Uint8Array(N * kBlocks * bs);
  let signalSq = 0;
  let noiseSq = 0;
  for (let i = 0; i < w.length; i++) {
    signalSq += (w[i] as number) ** 2;
    noiseSq += ((w[i] as number) - (r.dequantized[i] as number)) ** 2;
  }
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const p = n * kBlocks + b;
      // Padding past K: the code nearest the zero point (dequantizes to ≈ 0), as quantizeSuperBlocks.
      const zr = Math.min(qmax, Math.max(0, Math.round(r.zeros[p] as number)));
      for (let i = 0; i < bs; i++) {
        const k = b * bs + i;
        const q = k < K ? (r.codes[n * K + k] as number) : (r.scales[p] as number) > 0 ? zr : 0;
        codes[p * bs + i] = q;
        const byte = p * blob + Math.floor(i / (8 / bits));
        packed[byte] = (packed[byte] as number) | (q << ((i % (8 / bits)) * bits));
      }
    }
  }
  return {
    K,
    N,
    kBlocks,
    packed,
    scales: r.scales,
    zeros: r.zeros,
    codes,
    signalSq,
    noiseSq,
    trueBytes: superBlockTrueBytes(K, N, o),
  };
}

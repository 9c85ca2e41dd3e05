import { decodeFloat16, encodeFloat16 } from '../formats/float16.js';
import { ROUNDER } from '../formats/rounding.js';
import { gptqPrepare } from './gptq.js';
import { NonFiniteWeight } from './non-finite-weight.js';

/**
 * SpQR (Dettmers et al. 2023, "SpQR: A Sparse-Quantized Representation for Near-Lossless LLM
 * Weight Compression", Algorithm 1), in a form ONNX Runtime's stock kernels run:
 *  - low-bit part: asymmetric `codeBits` codes (3) in groups of β1 = `blockSize` inputs per output
 *    (MatMulNBits blocks, 4-bit storage); the group's zero point is an integer code (0 … 7, GPTQ's
 *    asymmetric quantizer with 0 in range), its scale is itself quantized to `statBits` (3) in
 *    groups of β2 = `statGroup` consecutive outputs: scale = step · x with one fp16 step and an
 *    int8 offset per second-level group and x in offset … offset + 7 (DequantizeLinear int8 × step).
 *  - outliers: individual weights whose rounding error, weighted as GPTQ weighs it
 *    ((w − q) / U[k,k])², exceeds a threshold τ are kept exact: the low-bit code stays and an fp16
 *    correction w − q is stored sparsely (CSR over outputs: 16-bit input index + fp16 value).
 *  - GPTQ order: input rows are quantized one by one with the error pushed onto the rows not yet
 *    quantized (H = XᵀX; the identity without calibration data, which makes it round-to-nearest).
 *    A group's first-level statistics are chosen when GPTQ reaches it, from the values as updated
 *    by then, leaving out the weights already flagged as outliers there (they would stretch the
 *    range), as SpQR does.
 *  τ: the `outliers`-quantile of the scores of a first, error-free pass over the original weights;
 *  the count is capped at ⌈outliers · K · N⌉, so GPTQ's moved weights never exceed the budget.
 *
 * Zero points are not second-level quantized: an integer code 0 … 7 is exact in 3 bits already.
 */

export interface SpqrOptions {
  /** β1: inputs per first-level group (MatMulNBits block_size). */
  readonly blockSize: number;
  /** β2: outputs per second-level group of scales (default 16). */
  readonly statGroup?: number;
  readonly codeBits?: number;
  readonly statBits?: number;
  /** Fraction of the weights kept exact (0.005 = 0.5 %). */
  readonly outliers: number;
  /** GPTQ dampening (fraction of mean diag H, default 0.01). */
  readonly damp?: number;
}

/** True storage of each part, in bits. */
export interface SpqrBits {
  readonly codes: number;
  readonly scales: number;
  readonly zeros: number;
  /** fp16 step + int8 offset per second-level group. */
  readonly secondLevel: number;
  /** 32 per outlier (fp16 value, 16-bit input index) + 16-bit CSR row pointers. */
  readonly outliers: number;
  readonly total: number;
}

export interface SpqrWeights {
  readonly K: number;
  readonly N: number;
  readonly kBlocks: number;
  readonly blockSize: number;
  readonly statGroup: number;
  /** MatMulNBits B: 4-bit storage [N, kBlocks, blockSize / 2], first code in the low nibble. */
  readonly packed: Uint8Array;
  /** MatMulNBits zero points, 4-bit packed [N, ⌈kBlocks / 2⌉]. */
  readonly zeroPoints: Uint8Array;
  /** Integer zero points [N, kBlocks]. */
  readonly zeros: Uint8Array;
  /** x of scale = x · step, [N, kBlocks]. */
  readonly scaleCodes: Int8Array;
  /** step per second-level group [⌈N / β2⌉, kBlocks] (fp16 values). */
  readonly scaleSteps: Float32Array;
  /** The first-level scales as dequantized (float32 x · step), [N, kBlocks]. */
  readonly scales: Float32Array;
  /** Outliers, by output n then input k: corrections w − q as fp16 bits. */
  readonly outlierN: Int32Array;
  readonly outlierK: Int32Array;
  readonly outlierValue: Uint16Array;
  /** Ŵ [K, N]: low-bit value plus correction, what the model computes with. */
  readonly dequantized: Float32Array;
  readonly bits: SpqrBits;
  readonly signalSq: number;
  readonly noiseSq: number;
  readonly dampUsed: number;
}

const f = Math.fround;
const toHalf = (v: number) => decodeFloat16(encodeFloat16(v));

/** One second-level group: x (int8) and step with x·step ≈ v, x in a window of 2^bits codes. */
function quantizeStats(v: Float64Array, len: number, bits: number, x: Int8Array, xOff: number): number {
  const levels = (1 << bits) - 1;
  let lo = Infinity;
  let hi = -Infinity;
  let amax = 0;
  for (let i = 0; i < len; i++) {
    const s = v[i] as number;
    lo = Math.min(lo, s);
    hi = Math.max(hi, s);
    amax = Math.max(amax, Math.abs(s));
  }
  if (!(amax > 0)) {
    for (let i = 0; i < len; i++) x[xOff + i] = 0;
    return 0;
  }
  // A step below max/127 would need offsets past int8: coarser then, still within a 3-bit window.
  let step = toHalf(Math.max((hi - lo) / levels, amax / 127));
  if (!(step > 0)) step = toHalf(amax);
  let c0 = Math.round((lo + hi) / (2 * step) - levels / 2);
  c0 = Math.min(127 - levels, Math.max(-128, c0));
  // A positive scale never rounds to 0 (its whole group would dequantize to 0).
  const floor = c0 <= 0 && lo > 0 ? 1 : c0;
  for (let i = 0; i < len; i++) {
    const q = Math.round((v[i] as number) / step);
    x[xOff + i] = Math.min(c0 + levels, Math.max(floor, q));
  }
  return step;
}

/** First-level range of one group (0 included, GPTQ's asymmetric quantizer), skipping flagged values. */
function groupRange(vals: Float64Array, len: number, skip: Uint8Array | undefined): [number, number] {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < len; i++) {
    if (skip && skip[i]) continue;
    const v = vals[i] as number;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return [lo, hi];
}

export function spqrBits(K: number, N: number, nnz: number, o: SpqrOptions): SpqrBits {
  const codeBits = o.codeBits ?? 3;
  const statBits = o.statBits ?? 3;
  const kBlocks = Math.ceil(K / o.blockSize);
  const groups = Math.ceil(N / (o.statGroup ?? 16)) * kBlocks;
  const codes = codeBits * K * N;
  const scales = statBits * N * kBlocks;
  const zeros = codeBits * N * kBlocks;
  const secondLevel = 24 * groups;
  const outliers = nnz > 0 ? 32 * nnz + 16 * (N + 1) : 0;
  return { codes, scales, zeros, secondLevel, outliers, total: codes + scales + zeros + secondLevel + outliers };
}

/**
 * SpQR of W [K, N] row-major (MatMul B). `hessian`: XᵀX [K, K], or undefined for the data-free
 * form (identity: round-to-nearest with outliers by plain weight error).
 */
export function spqrQuantize(
  w: Float32Array,
  K: number,
  N: number,
  hessian: Float64Array | undefined,
  o: SpqrOptions,
): SpqrWeights {
  for (let i = 0; i < w.length; i++) {
    const v = w[i] as number;
    if (!Number.isFinite(v)) throw new NonFiniteWeight(i % N, Math.floor(i / N), v);
  }
  const bs = o.blockSize;
  const g2 = o.statGroup ?? 16;
  const qmax = (1 << (o.codeBits ?? 3)) - 1;
  const statBits = o.statBits ?? 3;
  const kBlocks = Math.ceil(K / bs);
  const nGroups = Math.ceil(N / g2);
  let h = hessian;
  if (!h) {
    h = new Float64Array(K * K);
    for (let k = 0; k < K; k++) h[k * K + k] = 1;
  }
  const { w: W, u: U, dampUsed } = gptqPrepare(w, K, N, h, o.damp === undefined ? {} : { damp: o.damp });
  const budget = Math.min(K * N, Math.round(o.outliers * K * N));
  const vals = new Float64Array(bs);

  // τ from a pass over the original weights with unquantized first-level statistics.
  let tau = Infinity;
  if (budget > 0) {
    const scores = new Float64Array(K * N);
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * bs;
      const len = Math.min(bs, K - k0);
      for (let n = 0; n < N; n++) {
        for (let t = 0; t < len; t++) vals[t] = W[(k0 + t) * N + n] as number;
        const [lo, hi] = groupRange(vals, len, undefined);
        const s = (hi - lo) / qmax;
        const z = s > 0 ? Math.round(-lo / s) : 0;
        for (let t = 0; t < len; t++) {
          const v = vals[t] as number;
          const c = s > 0 ? Math.min(qmax, Math.max(0, Math.round(v / s) + z)) : z;
          const d = U[(k0 + t) * K + k0 + t] as number;
          scores[(k0 + t) * N + n] = ((v - (c - z) * s) / d) ** 2;
        }
      }
    }
    const sorted = scores.sort();
    tau = sorted[K * N - budget] as number;
    // Ties at τ (e.g. all-zero scores) must not flag everything: strictly above it, and above 0.
    if (!(tau > 0)) tau = Number.MIN_VALUE;
  }

  const codes = new Uint8Array(N * K);
  const scaleCodes = new Int8Array(N * kBlocks);
  const scaleSteps = new Float32Array(nGroups * kBlocks);
  const scales = new Float32Array(N * kBlocks);
  const zeros = new Uint8Array(N * kBlocks);
  const dequantized = new Float32Array(K * N);
  const flagged = new Uint8Array(K * N);
  const outN: number[] = [];
  const outK: number[] = [];
  const outV: number[] = [];
  let count = 0;
  const firstScale = new Float64Array(N);
  const lows = new Float64Array(N);
  const groupScales = new Float64Array(g2);
  const groupCodes = new Int8Array(g2);
  const skip = new Uint8Array(bs);
  const err = new Float64Array(N);

  const chooseBlock = (b: number) => {
    const k0 = b * bs;
    const len = Math.min(bs, K - k0);
    for (let n = 0; n < N; n++) {
      for (let t = 0; t < len; t++) vals[t] = W[(k0 + t) * N + n] as number;
      let [lo, hi] = groupRange(vals, len, undefined);
      if (count < budget) {
        // Flag the weights the plain group quantizer would code worst, then fit the rest.
        const s = (hi - lo) / qmax;
        const z = s > 0 ? Math.round(-lo / s) : 0;
        let any = false;
        skip.fill(0);
        for (let t = 0; t < len && count < budget; t++) {
          const v = vals[t] as number;
          const c = s > 0 ? Math.min(qmax, Math.max(0, Math.round(v / s) + z)) : z;
          const d = U[(k0 + t) * K + k0 + t] as number;
          if (((v - (c - z) * s) / d) ** 2 > tau) {
            skip[t] = 1;
            flagged[(k0 + t) * N + n] = 1;
            count++;
            any = true;
          }
        }
        if (any) [lo, hi] = groupRange(vals, len, skip);
      }
      firstScale[n] = (hi - lo) / qmax;
      lows[n] = lo;
    }
    for (let g = 0; g < nGroups; g++) {
      const n0 = g * g2;
      const len = Math.min(g2, N - n0);
      for (let i = 0; i < len; i++) groupScales[i] = firstScale[n0 + i] as number;
      const step = quantizeStats(groupScales, len, statBits, groupCodes, 0);
      scaleSteps[g * kBlocks + b] = step;
      for (let i = 0; i < len; i++) {
        const p = (n0 + i) * kBlocks + b;
        const x = groupCodes[i] as number;
        scaleCodes[p] = x;
        // As DequantizeLinear computes it: float32 (x − 0) · step.
        const s = f(x * step);
        scales[p] = s;
        zeros[p] = s > 0 ? Math.min(qmax, Math.max(0, Math.round(-(lows[n0 + i] as number) / s))) : 0;
      }
    }
  };

  for (let k = 0; k < K; k++) {
    const b = Math.floor(k / bs);
    if (k % bs === 0) chooseBlock(b);
    const d = U[k * K + k] as number;
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const p = n * kBlocks + b;
      const s = scales[p] as number;
      const z = zeros[p] as number;
      const v = W[row + n] as number;
      const c = s > 0 ? Math.min(qmax, Math.max(0, Math.round(v / s + ROUNDER - ROUNDER) + z)) : z;
      const back = f((c - z) * s);
      codes[n * K + k] = c;
      let deq = back;
      const flag = flagged[row + n] === 1;
      if (flag || (count < budget && ((v - back) / d) ** 2 > tau)) {
        if (!flag) count++;
        const corr = encodeFloat16(v - back);
        deq = f(back + decodeFloat16(corr));
        outN.push(n);
        outK.push(k);
        outV.push(corr);
      }
      dequantized[row + n] = deq;
      err[n] = (v - deq) / d;
    }
    for (let j = k + 1; j < K; j++) {
      const ukj = U[k * K + j] as number;
      if (ukj === 0) continue;
      const rj = j * N;
      for (let n = 0; n < N; n++) W[rj + n] = (W[rj + n] as number) - (err[n] as number) * ukj;
    }
  }

  // CSR order: by output, then input.
  const order = Array.from(outN.keys()).sort(
    (a, c) => (outN[a] as number) - (outN[c] as number) || (outK[a] as number) - (outK[c] as number),
  );
  const outlierN = Int32Array.from(order, (i) => outN[i] as number);
  const outlierK = Int32Array.from(order, (i) => outK[i] as number);
  const outlierValue = Uint16Array.from(order, (i) => outV[i] as number);

  const blob = bs / 2;
  const packed = new Uint8Array(N * kBlocks * blob);
  const zpBytes = Math.ceil(kBlocks / 2);
  const zeroPoints = new Uint8Array(N * zpBytes);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const p = n * kBlocks + b;
      const z = zeros[p] as number;
      zeroPoints[n * zpBytes + (b >> 1)] = (zeroPoints[n * zpBytes + (b >> 1)] as number) | (z << ((b & 1) * 4));
      for (let i = 0; i < bs; i++) {
        const k = b * bs + i;
        // Padding past K holds the zero point: it dequantizes to exactly 0.
        const c = k < K ? (codes[n * K + k] as number) : z;
        const byte = p * blob + (i >> 1);
        packed[byte] = (packed[byte] as number) | (c << ((i & 1) * 4));
      }
    }
  }
  let signalSq = 0;
  let noiseSq = 0;
  for (let i = 0; i < w.length; i++) {
    signalSq += (w[i] as number) ** 2;
    noiseSq += ((w[i] as number) - (dequantized[i] as number)) ** 2;
  }
  return {
    K,
    N,
    kBlocks,
    blockSize: bs,
    statGroup: g2,
    packed,
    zeroPoints,
    zeros,
    scaleCodes,
    scaleSteps,
    scales,
    outlierN,
    outlierK,
    outlierValue,
    dequantized,
    bits: spqrBits(K, N, outlierN.length, o),
    signalSq,
    noiseSq,
    dampUsed,
  };
}

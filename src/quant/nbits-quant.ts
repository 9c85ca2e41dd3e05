import { ROUNDER } from '../formats/rounding.js';
import { NonFiniteWeight } from './non-finite-weight.js';

/**
 * Block-wise integer quantization of a weight matrix in the layout ONNX Runtime's
 * com.microsoft MatMulNBits reads (docs/ContribOperators.md, MatMulNBits):
 *   B           uint8 [N, k_blocks, blob_size], blob_size = block_size · bits / 8, codes of one
 *               block packed along K, first element in the LOW bits (checked against ORT 1.30)
 *   scales      float32 [N, k_blocks]
 *   zero_points uint8 [N, ceil(k_blocks · bits / 8)] packed the same way; absent → 2^(bits-1)
 *   dequantized W[k, n] = (code − zp) · scale
 * K not divisible by block_size: the last block is padded with code = zp (dequantizes to exactly
 * 0; MLAS never reads it for real columns, but a reader of the file sees zeros).
 *
 * Scale choice. ONNX Runtime's MatMul4BitsQuantizer is round-to-nearest: symmetric takes the
 * value of largest magnitude m and sets scale = m / −2^(bits−1) (so m lands on the extra negative
 * code), asymmetric maps [min(lo,0), max(hi,0)] onto [0, 2^bits − 1]. The default search instead
 * starts from a few candidate scales (RTN's, and m mapped onto the largest positive code — or a
 * shrunken range for asymmetric) and refines each by alternating least squares: with the codes c
 * fixed, the scale minimising Σ(x − s·c)² is s = Σx·c / Σc²; re-rounding with that scale can only
 * lower the error again (each code is the nearest one in range), so every step is monotone. The
 * block keeps the candidate of least squared error, measured from the same sums (Σx², Σx·c, Σc²),
 * so no block is worse than RTN, which is always a candidate.
 *
 * Speed: the symmetric search is three fused passes over each block (absmax and Σx²; both
 * starts scored in one pass; one re-rounding at the refined scale that keeps its codes, which are
 * then packed as they are, the last least-squares step costing no pass), all on typed arrays with
 * scalar locals. Rounding half to even uses the 1.5·2^52 trick: in float64, (v + M) − M rounds v
 * to an integer with ties to even for |v| < 2^51 — exact, and far cheaper than Math.round plus a
 * tie fix-up. A [K, N] MatMul weight is transposed one strip of blockSize rows at a time so every
 * pass reads contiguous memory.
 */

export interface NBitsOptions {
  /** Storage bits per code (MatMulNBits' `bits`). */
  readonly bits: 2 | 4 | 8;
  readonly blockSize: number;
  readonly symmetric: boolean;
  /** Round-to-nearest as ONNX Runtime's quantizer does, no search. */
  readonly rtn?: boolean;
  /**
   * Fewer levels than the storage holds: 2^codeBits codes (3 → 8 levels in 4-bit storage, the
   * q3 schemes). Symmetric codes are centred on the storage's default zero point 2^(bits−1)
   * (3-bit in 4-bit: codes 4 … 11, levels −4 … 3), so no zero-point tensor is needed; asymmetric
   * codes and zero points use 0 … 2^codeBits − 1. Default: bits.
   */
  readonly codeBits?: number | undefined;
}

/** The code range [lo, hi] and the symmetric zero point of `o` in storage codes. */
export function codeRange(o: NBitsOptions): { lo: number; hi: number; mid: number } {
  const cb = o.codeBits ?? o.bits;
  const off = o.symmetric ? (1 << (o.bits - 1)) - (1 << (cb - 1)) : 0;
  return { lo: off, hi: off + (1 << cb) - 1, mid: 1 << (o.bits - 1) };
}

export interface NBitsWeights {
  readonly K: number;
  readonly N: number;
  readonly kBlocks: number;
  /** [N · kBlocks · blobSize] */
  readonly packed: Uint8Array;
  /** [N · kBlocks] */
  readonly scales: Float32Array;
  /** Packed [N · ceil(kBlocks·bits/8)] for asymmetric; undefined for symmetric (default zp). */
  readonly zeroPoints: Uint8Array | undefined;
  /** Unpacked codes [N · kBlocks · blockSize] (padding included), e.g. for the QDQ form; unpacked on first use. */
  readonly codes: Uint8Array;
  /** Per-block zero point [N · kBlocks]. */
  readonly zp: Uint8Array;
  /** Σx² over the weight and Σ(x − dequantized x)²: the SQNR without a dequantized copy. */
  readonly signalSq: number;
  readonly noiseSq: number;
}

const f = Math.fround;
const FLT_MIN = 2 ** -126;

function roundHalfAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** A sane stored scale: finite, normal, never 0 (a block of zeros or subnormals gets a harmless one). */
function saneScale(s: number): number {
  const a = f(s);
  if (!(Math.abs(a) >= FLT_MIN) || !Number.isFinite(a)) return a < 0 ? -FLT_MIN : FLT_MIN;
  return a;
}

function throwNonFinite(x: Float32Array, start: number, len: number, n: number, off: number): never {
  for (let i = start; i < start + len; i++) {
    const v = x[i] as number;
    if (!Number.isFinite(v)) throw new NonFiniteWeight(n, i - off, v);
  }
  throw new Error('unreachable: a non-finite sum of squares of finite float32 values');
}

/**
 * What a block's scale choice hands back to its caller, written into an object the caller owns
 * (one per RowEncoder, so the hot loops allocate nothing per block and no module state is shared).
 */
class BlockChoice {
  scale = 1;
  zp = 0;
  /** Squared error Σ(x − dequantized x)² of the choice (the search measures it anyway). */
  err = 0;
  /** The symmetric search left the block's codes in its codes array (else: round at `scale`). */
  codesKept = false;
}

/**
 * Σx·c and Σc² for two scales at once (c = clamp(rne(x/s) + z, 0, qmax) − z), into
 * out[0..1] for s1 and out[2..3] for s2. Two candidates per pass halve the loads and loop overhead.
 */
function sums2(
  x: Float32Array,
  off: number,
  len: number,
  s1: number,
  s2: number,
  z: number,
  qmax: number,
  out: Float64Array,
): void {
  const i1 = 1 / s1;
  const i2 = 1 / s2;
  const lo = -z;
  const hi = qmax - z;
  let xc1 = 0,
    cc1 = 0,
    xc2 = 0,
    cc2 = 0;
  for (let i = off, end = off + len; i < end; i++) {
    const v = x[i] as number;
    let c1 = v * i1 + ROUNDER - ROUNDER;
    c1 = c1 < lo ? lo : c1 > hi ? hi : c1;
    let c2 = v * i2 + ROUNDER - ROUNDER;
    c2 = c2 < lo ? lo : c2 > hi ? hi : c2;
    xc1 += v * c1;
    cc1 += c1 * c1;
    xc2 += v * c2;
    cc2 += c2 * c2;
  }
  out[0] = xc1;
  out[1] = cc1;
  out[2] = xc2;
  out[3] = cc2;
}

/** Σ(x − s·c)² from the sums: Σx² − 2sΣxc + s²Σc². */
const sqErr = (xx: number, s: number, xc: number, cc: number) => xx - 2 * s * xc + s * s * cc;

/**
 * Least-squares refinements of each start of the asymmetric search (one pass each); the symmetric
 * search does not read it (searchSymmetric: one re-rounding, then one free step). q4-asym block 32
 * perplexity against fp32 (scripts/measure/weight-only-quality.ts) for 0 / 1 / 2 / 3 / 4 steps:
 * lm.onnx +1.14 / +1.05 / +1.00 / +1.05 / +1.03 %, lm-constants +2.99 / +2.76 / +2.60 / +2.68 /
 * +2.66 % (RTN +1.22 %, +3.40 %). On lm-gemm-tied every count is worse than RTN (+3.49 … +4.20 %
 * against +2.96 %), 2 steps +3.80 %.
 */
const LS_STEPS = 2;

/**
 * Chosen scale of a symmetric block (zero point fixed at 2^(bits−1)); m ≠ 0. The better of the
 * two starts gives s1 = Σxc/Σc² (its least-squares scale); one pass re-rounds at s1, keeping the
 * codes q (0..qmax) in `codes` (each the nearest in range, so the error can only drop); with those
 * codes FIXED, s2 = Σxc/Σc² is again the least-squares scale, so it can only drop once more — for
 * free, no pass. The errors are measured from the sums (float32 rounding of a scale can cost a
 * hair), and the start wins if nothing beat it (then out.codesKept is false and the caller rounds
 * at it). `sums` is scratch of 4.
 */
function searchSymmetric(
  x: Float32Array,
  off: number,
  len: number,
  m: number,
  xx: number,
  mid: number,
  qmax: number,
  sums: Float64Array,
  codes: Float64Array,
  out: BlockChoice,
): void {
  const a = saneScale(m / -mid); // RTN: m → code 0 (value −mid)
  const b = saneScale(m / (mid - 1)); // m → the largest positive code (value mid − 1)
  sums2(x, off, len, a, b, mid, qmax, sums);
  const eA = sqErr(xx, a, sums[0] as number, sums[1] as number);
  const eB = sqErr(xx, b, sums[2] as number, sums[3] as number);
  // m lands on a non-zero code for both starts, so Σc² > 0.
  const start = eB < eA ? b : a;
  const startErr = eB < eA ? eB : eA;
  const s1 =
    eB < eA
      ? saneScale((sums[2] as number) / (sums[3] as number))
      : saneScale((sums[0] as number) / (sums[1] as number));
  const inv = 1 / s1;
  const hi = qmax - mid;
  let xc = 0,
    cc = 0;
  for (let i = off, j = 0, end = off + len; i < end; i++, j++) {
    const v = x[i] as number;
    let c = v * inv + ROUNDER - ROUNDER;
    c = c < -mid ? -mid : c > hi ? hi : c;
    codes[j] = c + mid;
    xc += v * c;
    cc += c * c;
  }
  let best = s1;
  let bestErr = sqErr(xx, s1, xc, cc);
  if (cc > 0) {
    const s2 = saneScale(xc / cc);
    const e2 = sqErr(xx, s2, xc, cc);
    if (e2 < bestErr) {
      best = s2;
      bestErr = e2;
    }
  }
  const kept = bestErr < startErr;
  out.codesKept = kept;
  out.err = kept ? bestErr : startErr;
  out.scale = kept ? best : start;
  out.zp = mid;
}

/** ONNX Runtime's asymmetric round-to-nearest (scale, zero point) for the range [lo, hi], into out. */
function asymParams(lo: number, hi: number, qmax: number, out: BlockChoice): void {
  // ORT range2scalezp: the range always holds 0; zp = roundf(−lo / scale) clamped.
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const span = f(b - a);
  if (span === 0) {
    out.scale = 1;
    out.zp = 0;
    return;
  }
  out.scale = saneScale(f(span / qmax));
  const z = f(-a / out.scale);
  out.zp = z < 0 ? 0 : z > qmax ? qmax : Math.sign(z) * Math.floor(Math.abs(z) + 0.5);
}

/**
 * Asymmetric search: candidates RTN and a 0.9-shrunken range, each refined by a least-squares fit
 * x ≈ a·q + b over its codes (scale a, zero point −b/a rounded into range). The zero point's
 * rounding makes a step non-monotone, so every candidate's error is measured and the least kept
 * (scale, zero point and error into out).
 */
function searchAsymmetric(
  x: Float32Array,
  off: number,
  len: number,
  lo: number,
  hi: number,
  xx: number,
  qmax: number,
  out: BlockChoice,
): void {
  asymParams(lo, hi, qmax, out);
  let bestS = out.scale;
  let bestZ = out.zp;
  let bestErr = Infinity;
  let sx = 0;
  for (let i = off, end = off + len; i < end; i++) sx += x[i] as number;
  for (const shrink of [1, 0.9]) {
    asymParams(lo * shrink, hi * shrink, qmax, out);
    let s = out.scale;
    let z = out.zp;
    for (let step = 0; ; step++) {
      const inv = 1 / s;
      let sq = 0,
        sqq = 0,
        sxq = 0;
      for (let i = off, end = off + len; i < end; i++) {
        const v = x[i] as number;
        let q = v * inv + ROUNDER - ROUNDER + z;
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        sq += q;
        sqq += q * q;
        sxq += v * q;
      }
      // c = q − z: Σxc = Σxq − zΣx, Σc² = Σq² − 2zΣq + n·z².
      const e = sqErr(xx, s, sxq - z * sx, sqq - 2 * z * sq + len * z * z);
      if (e < bestErr) {
        bestErr = e;
        bestS = s;
        bestZ = z;
      }
      const den = len * sqq - sq * sq;
      if (step === LS_STEPS || !(den > 0)) break;
      const a = (len * sxq - sx * sq) / den;
      if (!(a > 0)) break;
      const zz = -((sx - a * sq) / len) / a;
      s = saneScale(a);
      z = zz < 0 ? 0 : zz > qmax ? qmax : zz + ROUNDER - ROUNDER;
    }
  }
  out.scale = bestS;
  out.zp = bestZ;
  out.err = bestErr;
  out.codesKept = false;
}

/** The float32 bit patterns of x, as int32 (the same memory). */
function int32View(x: Float32Array): Int32Array {
  return new Int32Array(x.buffer, x.byteOffset, x.length);
}

/** Output buffers and the quantization of one row (one output column n of W). */
class RowEncoder {
  readonly kBlocks: number;
  readonly blob: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zp: Uint8Array;
  signalSq = 0;
  noiseSq = 0;
  private readonly bits: number;
  /** Largest code of the levels (2^codeBits − 1) and their symmetric zero point, before `off`. */
  private readonly qmax: number;
  private readonly mid: number;
  /** Added to every code and zero point when stored (codeBits < bits, symmetric: centres the levels). */
  private readonly off: number;
  private readonly logPerByte: number;
  // Per-encoder scratch the block searches write their results into (no allocation per block).
  private readonly choice = new BlockChoice();
  private readonly sums = new Float64Array(4);
  /** Codes of the current block when the symmetric search kept them (choice.codesKept). */
  private readonly kept: Float64Array;

  constructor(
    readonly K: number,
    readonly N: number,
    private readonly o: NBitsOptions,
  ) {
    this.bits = o.bits;
    this.kBlocks = Math.ceil(K / o.blockSize);
    this.blob = (o.blockSize * o.bits) / 8;
    const cb = o.codeBits ?? o.bits;
    this.qmax = (1 << cb) - 1;
    this.mid = 1 << (cb - 1);
    this.off = codeRange(o).lo;
    this.logPerByte = o.bits === 8 ? 0 : o.bits === 4 ? 1 : 2;
    this.packed = new Uint8Array(N * this.kBlocks * this.blob);
    this.scales = new Float32Array(N * this.kBlocks);
    this.zp = new Uint8Array(N * this.kBlocks);
    this.kept = new Float64Array(o.blockSize);
  }

  /** Quantizes row n, read from x[off .. off + K) (xi: x's bits, int32View(x)). */
  encodeRow(n: number, x: Float32Array, off: number, xi = int32View(x)): void {
    const blockSize = this.o.blockSize;
    for (let b = 0; b < this.kBlocks; b++) this.encodeBlock(n, b, x, xi, off + b * blockSize, off);
  }

  /**
   * Quantizes block b of row n, read from x[start .. start + len); `rowOff` is where the row
   * would begin in x (for naming a non-finite element's column only).
   */
  encodeBlock(n: number, b: number, x: Float32Array, xi: Int32Array, start: number, rowOff: number): void {
    const { K, kBlocks, qmax, mid, bits, logPerByte, off } = this;
    const { blockSize, symmetric } = this.o;
    const rtn = this.o.rtn ?? false;
    const perMask = (1 << logPerByte) - 1;
    const packed = this.packed;
    let signal = 0;
    let noise = 0;
    {
      const len = Math.min(blockSize, K - b * blockSize);
      // Pass 1: Σx² and the range. Data-dependent branches mispredict on random weights, so the
      // loop keeps only branch-free max/min; the finiteness check rides on Σx² (NaN or ±Inf in,
      // non-finite sum out — a float32 squared cannot overflow a double). Symmetric blocks need
      // only max|x|: taken on the float32 bit patterns with the sign bit cleared, whose int32
      // order is the order of magnitudes — an integer max (a compare and a conditional move),
      // where a float Math.max must also handle NaN and −0 and took longer than the whole pass.
      let xx = 0;
      let lo = Infinity;
      let hi = -Infinity;
      let amBits = 0;
      if (symmetric) {
        for (let i = start, end = start + len; i < end; i++) {
          const v = x[i] as number;
          amBits = Math.max(amBits, (xi[i] as number) & 0x7fffffff);
          xx += v * v;
        }
      } else {
        for (let i = start, end = start + len; i < end; i++) {
          const v = x[i] as number;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
          xx += v * v;
        }
      }
      if (!(xx < Infinity)) throwNonFinite(x, start, len, n, rowOff);
      // m: the FIRST value of largest magnitude, as MLAS picks it (matters only for ties ±m).
      let m = 0;
      if (symmetric && amBits > 0) {
        for (let i = start; ; i++) {
          if (((xi[i] as number) & 0x7fffffff) === amBits) {
            m = x[i] as number;
            break;
          }
        }
      }
      const choice = this.choice;
      const kept = this.kept;
      let scale: number;
      let z: number;
      let fromCodes = false;
      if (symmetric) {
        z = mid;
        if (m === 0) scale = 1;
        else if (rtn) scale = saneScale(m / -mid);
        else {
          searchSymmetric(x, start, len, m, xx, mid, qmax, this.sums, kept, choice);
          scale = choice.scale;
          fromCodes = choice.codesKept;
        }
      } else {
        if (rtn || (lo === 0 && hi === 0)) {
          asymParams(lo, hi, qmax, choice);
          // RTN sums its error in the final pass; a block of zeros has none.
          choice.err = 0;
        } else {
          searchAsymmetric(x, start, len, lo, hi, xx, qmax, choice);
        }
        scale = choice.scale;
        z = choice.zp;
      }
      const p = n * kBlocks + b;
      this.scales[p] = scale;
      this.zp[p] = z + off;
      const byteBase = p * this.blob;
      // Final pass: codes and packing. RTN reproduces MLAS BlockwiseQuantizer bit for bit:
      // roundf(v · (1/scale) + zp), ties away from zero, and sums its error here; the search
      // rounds v / scale half to even, exactly as it scored it, and already knows its error.
      if (rtn || (m === 0 && symmetric)) {
        const invF = f(1 / scale);
        let xc = 0,
          cc = 0;
        for (let i = 0; i < len; i++) {
          const v = x[start + i] as number;
          let q = roundHalfAway(f(f(v * invF) + z));
          q = q < 0 ? 0 : q > qmax ? qmax : q;
          const c = q - z;
          xc += v * c;
          cc += c * c;
          const byte = byteBase + (i >> logPerByte);
          packed[byte] = (packed[byte] as number) | ((q + off) << ((i & perMask) * bits));
        }
        noise += Math.max(0, sqErr(xx, scale, xc, cc));
      } else if (fromCodes) {
        // The search's kept codes, packed as they are.
        let i = 0;
        if (bits === 4 && off === 0)
          for (; i + 1 < len; i += 2)
            packed[byteBase + (i >> 1)] = (kept[i] as number) | ((kept[i + 1] as number) << 4);
        for (; i < len; i++) {
          const byte = byteBase + (i >> logPerByte);
          packed[byte] = (packed[byte] as number) | (((kept[i] as number) + off) << ((i & perMask) * bits));
        }
        noise += Math.max(0, choice.err);
      } else {
        const inv = 1 / scale;
        let i = 0;
        if (bits === 4 && off === 0) {
          // Two codes per byte, one store.
          for (; i + 1 < len; i += 2) {
            let q0 = (x[start + i] as number) * inv + ROUNDER - ROUNDER + z;
            let q1 = (x[start + i + 1] as number) * inv + ROUNDER - ROUNDER + z;
            q0 = q0 < 0 ? 0 : q0 > qmax ? qmax : q0;
            q1 = q1 < 0 ? 0 : q1 > qmax ? qmax : q1;
            packed[byteBase + (i >> 1)] = q0 | (q1 << 4);
          }
        }
        for (; i < len; i++) {
          let q = (x[start + i] as number) * inv + ROUNDER - ROUNDER + z;
          q = q < 0 ? 0 : q > qmax ? qmax : q;
          const byte = byteBase + (i >> logPerByte);
          packed[byte] = (packed[byte] as number) | ((q + off) << ((i & perMask) * bits));
        }
        noise += Math.max(0, choice.err);
      }
      for (let i = len; i < blockSize; i++) {
        const byte = byteBase + (i >> logPerByte);
        packed[byte] = (packed[byte] as number) | ((z + off) << ((i & perMask) * bits));
      }
      signal += xx;
    }
    this.signalSq += signal;
    this.noiseSq += noise;
  }

  finish(): NBitsWeights {
    const { K, N, kBlocks, packed, scales, zp, bits, signalSq, noiseSq } = this;
    const { blockSize, symmetric } = this.o;
    let zeroPoints: Uint8Array | undefined;
    if (!symmetric) {
      const perByte = 8 / bits;
      const zpBytes = Math.ceil((kBlocks * bits) / 8);
      zeroPoints = new Uint8Array(N * zpBytes);
      for (let n = 0; n < N; n++) {
        for (let b = 0; b < kBlocks; b++) {
          const byte = n * zpBytes + Math.floor(b / perByte);
          zeroPoints[byte] = (zeroPoints[byte] as number) | ((zp[n * kBlocks + b] as number) << ((b % perByte) * bits));
        }
      }
    }
    return nbitsWeightsFrom({ K, N, kBlocks, packed, scales, zeroPoints, zp, signalSq, noiseSq }, blockSize, bits);
  }
}

/** What a quantizer computes (all but the lazily unpacked codes): what a worker thread sends back. */
export type NBitsParts = Omit<NBitsWeights, 'codes'>;

/** The weights from their parts; `codes` is unpacked from `packed` on first use. */
export function nbitsWeightsFrom(parts: NBitsParts, blockSize: number, bits: number): NBitsWeights {
  const { K, N, kBlocks, packed, scales, zeroPoints, zp, signalSq, noiseSq } = parts;
  let codes: Uint8Array | undefined;
  return {
    K,
    N,
    kBlocks,
    packed,
    scales,
    zeroPoints,
    zp,
    signalSq,
    noiseSq,
    get codes(): Uint8Array {
      codes ??= unpackCodes(packed, N * kBlocks * blockSize, bits);
      return codes;
    },
  };
}

function unpackCodes(packed: Uint8Array, count: number, bits: number): Uint8Array {
  const out = new Uint8Array(count);
  const per = 8 / bits;
  const mask = (1 << bits) - 1;
  for (let i = 0; i < count; i++) out[i] = ((packed[Math.floor(i / per)] as number) >> ((i % per) * bits)) & mask;
  return out;
}

/**
 * Quantizes W^T given as rows: `rowOf(n, out)` fills out[0..K) with output column n of the
 * weight (W[:, n] for a MatMul B of shape [K, N]). Rows are read one at a time so the caller
 * decides the memory layout.
 */
export function quantizeNBits(
  K: number,
  N: number,
  rowOf: (n: number, out: Float32Array) => void,
  o: NBitsOptions,
): NBitsWeights {
  const enc = new RowEncoder(K, N, o);
  const row = new Float32Array(K);
  const rowBits = int32View(row);
  for (let n = 0; n < N; n++) {
    rowOf(n, row);
    enc.encodeRow(n, row, 0, rowBits);
  }
  return enc.finish();
}

/**
 * The same for a whole matrix in memory: `data` is alpha⁻¹·W as stored, either [K, N] (MatMul B;
 * `transposed` false) or [N, K] (Gemm with transB = 1). The [K, N] case transposes one strip of
 * blockSize rows at a time into a small buffer, so reads stay sequential. This is the reference
 * the WebAssembly kernel reproduces; passes call kernels/nbits-dispatch.ts, which picks the kernel.
 */
export function quantizeNBitsMatrix(
  data: Float32Array,
  K: number,
  N: number,
  transposed: boolean,
  alpha: number,
  o: NBitsOptions,
): NBitsWeights {
  const enc = new RowEncoder(K, N, o);
  if (transposed && alpha === 1) {
    const bits = int32View(data);
    for (let n = 0; n < N; n++) enc.encodeRow(n, data, n * K, bits);
    return enc.finish();
  }
  if (transposed) {
    const row = new Float32Array(K);
    const rowBits = int32View(row);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) row[k] = alpha * (data[n * K + k] as number);
      enc.encodeRow(n, row, 0, rowBits);
    }
    return enc.finish();
  }
  // One strip of blockSize rows of W (contiguous, blockSize · N floats: 512 KB for 32 × 4096,
  // L2-sized) is transposed into [N][blockSize] and its N blocks encoded. Reads are sequential
  // and the scattered writes stay in cache; a panel of columns over all K rows instead strides
  // N·4 bytes per element, a TLB miss per row of a 4096-wide weight.
  const bs = o.blockSize;
  const tile = new Float32Array(N * bs);
  const tileBits = int32View(tile);
  for (let b = 0, k0 = 0; k0 < K; b++, k0 += bs) {
    const rows = Math.min(bs, K - k0);
    for (let i = 0; i < rows; i++) {
      const src = (k0 + i) * N;
      if (alpha === 1) for (let n = 0, t = i; n < N; n++, t += bs) tile[t] = data[src + n] as number;
      else for (let n = 0, t = i; n < N; n++, t += bs) tile[t] = alpha * (data[src + n] as number);
    }
    for (let n = 0; n < N; n++) enc.encodeBlock(n, b, tile, tileBits, n * bs, n * bs - k0);
  }
  return enc.finish();
}

/** W[k, n] as MatMulNBits dequantizes it, row-major [K, N]. */
export function dequantizeNBits(w: NBitsWeights, blockSize: number): Float32Array {
  const { K, N, kBlocks, codes, scales, zp } = w;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const p = n * kBlocks + Math.floor(k / blockSize);
      out[k * N + n] = f(
        ((codes[p * blockSize + (k % blockSize)] as number) - (zp[p] as number)) * (scales[p] as number),
      );
    }
  }
  return out;
}

/** SQNR in dB from the sums the quantizer kept (Infinity when exact), as quant/metrics sqnrDb. */
export function nbitsSqnrDb(w: NBitsWeights): number {
  return w.noiseSq === 0 ? Infinity : 10 * Math.log10(w.signalSq / w.noiseSq);
}

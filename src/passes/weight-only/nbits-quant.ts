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
 * code), asymmetric maps [min(lo,0), max(hi,0)] onto [0, 2^bits − 1]. `search` instead tries a
 * grid of clipped scales per block (both signs for symmetric, shrunken ranges for asymmetric),
 * keeps the one with the least squared reconstruction error, then refines it with the
 * least-squares scale for the chosen codes (Σx·c / Σc²) while that lowers the error. Plain RTN is
 * the first grid point, so the search never does worse than RTN on any block.
 */

export interface NBitsOptions {
  readonly bits: 2 | 4 | 8;
  readonly blockSize: number;
  readonly symmetric: boolean;
  /** Round-to-nearest as ONNX Runtime's quantizer does, no search. */
  readonly rtn?: boolean;
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
  /** Unpacked codes [N · kBlocks · blockSize] (padding included), e.g. for the QDQ form. */
  readonly codes: Uint8Array;
  /** Per-block zero point [N · kBlocks]. */
  readonly zp: Uint8Array;
}

const f = Math.fround;
const FLT_MIN = 2 ** -126;
/** Clip ratios tried by the search: 1 (RTN) down to 0.6 of the range, step 0.02. */
const RATIOS: Float32Array = Float32Array.from({ length: 21 }, (_, i) => 1 - i * 0.02);

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

function roundHalfAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** Squared error of x ≈ (clamp(round(x/s) + z, 0, qmax) − z) · s over block values. */
function blockError(x: Float32Array, len: number, s: number, z: number, qmax: number, limit: number): number {
  let err = 0;
  const inv = f(1 / s);
  for (let i = 0; i < len; i++) {
    const v = x[i] as number;
    let q = roundHalfEven(f(v * inv)) + z;
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    const d = v - f((q - z) * s);
    err += d * d;
    if (err >= limit) return err; // cannot win; stop early
  }
  return err;
}

function leastSquaresScale(x: Float32Array, len: number, s: number, z: number, qmax: number): number {
  let xc = 0;
  let cc = 0;
  const inv = f(1 / s);
  for (let i = 0; i < len; i++) {
    const v = x[i] as number;
    let q = roundHalfEven(f(v * inv)) + z;
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    const c = q - z;
    xc += v * c;
    cc += c * c;
  }
  return cc > 0 ? xc / cc : s;
}

/** A sane stored scale: finite, normal, never 0 (a block of zeros or subnormals gets a harmless one). */
function saneScale(s: number): number {
  const a = f(s);
  if (!(Math.abs(a) >= FLT_MIN) || !Number.isFinite(a)) return a < 0 ? -FLT_MIN : FLT_MIN;
  return a;
}

interface BlockChoice { scale: number; zp: number }

function chooseSymmetric(x: Float32Array, len: number, bits: number, rtn: boolean): BlockChoice {
  const mid = 1 << (bits - 1);
  const qmax = (1 << bits) - 1;
  let m = 0;
  for (let i = 0; i < len; i++) {
    const v = x[i] as number;
    if (Math.abs(v) > Math.abs(m)) m = v;
  }
  if (m === 0) return { scale: 1, zp: mid };
  // ORT: scale = m / -mid, i.e. the largest magnitude maps to code 0 (value -mid).
  const rtnScale = saneScale(m / -mid);
  if (rtn) return { scale: rtnScale, zp: mid };
  let best = rtnScale;
  let bestErr = blockError(x, len, best, mid, qmax, Infinity);
  // Second family: the largest magnitude on the positive side (code qmax, value mid-1).
  const bases = [m / -mid, m / (mid - 1)];
  for (const base of bases) {
    for (let r = 0; r < RATIOS.length; r++) {
      const s = saneScale(base * (RATIOS[r] as number));
      const e = blockError(x, len, s, mid, qmax, bestErr);
      if (e < bestErr) { bestErr = e; best = s; }
    }
  }
  for (let it = 0; it < 3; it++) {
    const s = saneScale(leastSquaresScale(x, len, best, mid, qmax));
    const e = blockError(x, len, s, mid, qmax, bestErr);
    if (!(e < bestErr)) break;
    bestErr = e;
    best = s;
  }
  return { scale: best, zp: mid };
}

function asymParams(lo: number, hi: number, qmax: number): BlockChoice {
  // ORT range2scalezp: the range always holds 0; zp = roundf(−lo / scale) clamped.
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const span = f(b - a);
  if (span === 0) return { scale: 1, zp: 0 };
  const scale = saneScale(f(span / qmax));
  const z = f(-a / scale);
  return { scale, zp: z < 0 ? 0 : z > qmax ? qmax : Math.sign(z) * Math.floor(Math.abs(z) + 0.5) };
}

function chooseAsymmetric(x: Float32Array, len: number, bits: number, rtn: boolean): BlockChoice {
  const qmax = (1 << bits) - 1;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < len; i++) {
    const v = x[i] as number;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(lo <= hi)) return { scale: 1, zp: 0 };
  const first = asymParams(lo, hi, qmax);
  if (rtn || (lo === 0 && hi === 0)) return first;
  let best = first;
  let bestErr = blockError(x, len, first.scale, first.zp, qmax, Infinity);
  // Shrink each end independently on a coarse grid (outliers sit on one side).
  for (let i = 0; i < RATIOS.length; i += 2) {
    for (let j = 0; j < RATIOS.length; j += 2) {
      const c = asymParams(lo * (RATIOS[i] as number), hi * (RATIOS[j] as number), qmax);
      const e = blockError(x, len, c.scale, c.zp, qmax, bestErr);
      if (e < bestErr) { bestErr = e; best = c; }
    }
  }
  for (let it = 0; it < 3; it++) {
    const s = saneScale(leastSquaresScale(x, len, best.scale, best.zp, qmax));
    const e = blockError(x, len, s, best.zp, qmax, bestErr);
    if (!(e < bestErr)) break;
    bestErr = e;
    best = { scale: s, zp: best.zp };
  }
  return best;
}

/**
 * Quantizes W^T given as rows: `rowOf(n, out)` fills out[0..K) with output column n of the
 * weight (W[:, n] for a MatMul B of shape [K, N]). Rows are read one at a time so the caller
 * decides the memory layout.
 */
export function quantizeNBits(K: number, N: number, rowOf: (n: number, out: Float32Array) => void, o: NBitsOptions): NBitsWeights {
  const { bits, blockSize } = o;
  const kBlocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const perByte = 8 / bits;
  const qmax = (1 << bits) - 1;
  const packed = new Uint8Array(N * kBlocks * blob);
  const scales = new Float32Array(N * kBlocks);
  const zp = new Uint8Array(N * kBlocks);
  const codes = new Uint8Array(N * kBlocks * blockSize);
  const row = new Float32Array(K);
  const block = new Float32Array(blockSize);
  for (let n = 0; n < N; n++) {
    rowOf(n, row);
    for (let b = 0; b < kBlocks; b++) {
      const start = b * blockSize;
      const len = Math.min(blockSize, K - start);
      for (let i = 0; i < len; i++) {
        const v = row[start + i] as number;
        if (!Number.isFinite(v)) throw new NonFiniteWeight(n, start + i, v);
        block[i] = v;
      }
      const c = o.symmetric ? chooseSymmetric(block, len, bits, o.rtn ?? false) : chooseAsymmetric(block, len, bits, o.rtn ?? false);
      const p = n * kBlocks + b;
      scales[p] = c.scale;
      zp[p] = c.zp;
      const base = p * blockSize;
      const byteBase = p * blob;
      // RTN reproduces MLAS BlockwiseQuantizer bit for bit: roundf(v · (1/scale) + zp), ties away
      // from zero; the search path rounds v · (1/scale) half to even, exactly as it scored it.
      const inv = f(1 / c.scale);
      for (let i = 0; i < blockSize; i++) {
        let q = c.zp;
        if (i < len) {
          const v = block[i] as number;
          q = o.rtn ? roundHalfAway(f(f(v * inv) + c.zp)) : roundHalfEven(f(v * inv)) + c.zp;
          q = q < 0 ? 0 : q > qmax ? qmax : q;
        }
        codes[base + i] = q;
        const byte = byteBase + Math.floor(i / perByte);
        packed[byte] = (packed[byte] as number) | (q << ((i % perByte) * bits));
      }
    }
  }
  let zeroPoints: Uint8Array | undefined;
  if (!o.symmetric) {
    const zpBytes = Math.ceil((kBlocks * bits) / 8);
    zeroPoints = new Uint8Array(N * zpBytes);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < kBlocks; b++) {
        const byte = n * zpBytes + Math.floor(b / perByte);
        zeroPoints[byte] = (zeroPoints[byte] as number) | ((zp[n * kBlocks + b] as number) << ((b % perByte) * bits));
      }
    }
  }
  return { K, N, kBlocks, packed, scales, zeroPoints, codes, zp };
}

/** W[k, n] as MatMulNBits dequantizes it, row-major [K, N]. */
export function dequantizeNBits(w: NBitsWeights, blockSize: number): Float32Array {
  const { K, N, kBlocks, codes, scales, zp } = w;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const p = n * kBlocks + Math.floor(k / blockSize);
      out[k * N + n] = f(((codes[p * blockSize + (k % blockSize)] as number) - (zp[p] as number)) * (scales[p] as number));
    }
  }
  return out;
}

/** Thrown (and turned into a QuantkitError naming the tensor by the caller) on NaN/Inf weights. */
export class NonFiniteWeight extends Error {
  constructor(readonly row: number, readonly col: number, readonly value: number) {
    super(`non-finite weight ${value} at output ${row}, input ${col}`);
  }
}

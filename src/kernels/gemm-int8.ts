import { checkGemmInt8, type GemmInt8Problem, type Int8Codes } from './gemm-int8.ref.js';

/**
 * The fast JS twin of gemmInt8Ref, equal to it bit for bit.
 *
 * Zero points never enter the inner loop: Σ_k (a − za)(b − zb) = Σ a·b − zb·Σ_k a − za·Σ_k b +
 * K·za·zb, so the loop multiplies raw codes, and the row sums of A, the column sums of B (taken
 * once, when B is packed) and the constant fix the result up afterwards, in int32 arithmetic
 * modulo 2^32, which is what the reference's Int32Array stores (the exact sum for K ≤ 33025 with
 * any codes and zero points; see gemmInt8Ref).
 *
 * Two products per multiply: B is packed with two columns in one float64, lo + hi·2^26, so
 * a·(lo + hi·2^26) = a·lo + (a·hi)·2^26 carries both products, and summing over a K block of at
 * most 256 keeps each lane exact and apart: |Σ a·lo| ≤ 256·255² < 2^25 (half the lane), the whole
 * value < 2^51 (within float64's exact integers). After each block the lanes are split again
 * (hi = round(v / 2^26), lo = v − hi·2^26) and added to int32 accumulators. In a JS engine a
 * float64 multiply-add costs what an int32 one does, so this doubles the work per instruction.
 *
 * B is packed once into panels of 8 columns, [⌈N/8⌉][K][4 pairs], so the inner loop reads it
 * contiguously; packB is separate so a weight matrix is packed ahead of time and reused. K is cut
 * into blocks of KC so a block of the panels (KC·N·4 bytes) stays in cache while each group of 4
 * rows of A passes over it; each 4×8 tile of C lives in 16 local float64 accumulators.
 */

/** Columns of B per panel (4 float64 pairs) and rows of A per tile. */
const NR = 8;
const PAIRS = NR / 2;
const MR = 4;
/** K per block: at most 256 keeps a lane's sum below 2^25 (see above). */
const KC = 256;
/** The weight of the high lane, and its inverse. */
const LANE = 2 ** 26;
const INV_LANE = 2 ** -26;

/** B rearranged for gemmInt8Packed; independent of A and its zero point. */
export interface PackedB {
  readonly k: number;
  readonly n: number;
  /** [⌈N/8⌉][K][4]: columns 8p + 2q and 8p + 2q + 1 of row t as lo + hi·2^26 at (p·K + t)·4 + q; padded columns 0. */
  readonly panels: Float64Array;
  /** Σ_k B[k, j] of every column j. */
  readonly colSums: Int32Array;
  /** zb of every column j. */
  readonly bZero: Int32Array;
}

/** Packs B [K, N] (row-major codes) with its zero point(s) for gemmInt8Packed. */
export function packB(b: Int8Codes, k: number, n: number, bZero: number | ArrayLike<number>): PackedB {
  const np = Math.ceil(n / NR);
  const panels = new Float64Array(np * k * PAIRS);
  const colSums = new Int32Array(n);
  for (let t = 0; t < k; t++) {
    const row = t * n;
    for (let j = 0; j < n; j++) {
      const v = b[row + j] as number;
      const p = (j / NR) | 0;
      const s = j - p * NR;
      const at = (p * k + t) * PAIRS + (s >> 1);
      panels[at] = (panels[at] as number) + (s & 1 ? v * LANE : v);
      colSums[j] = (colSums[j] as number) + v;
    }
  }
  const zb = new Int32Array(n);
  for (let j = 0; j < n; j++) zb[j] = typeof bZero === 'number' ? bZero : (bZero[j] as number);
  return { k, n, panels, colSums, bZero: zb };
}

/** C [M, N] = MatMulInteger(A [M, K], B) for B packed by packB. */
export function gemmInt8Packed(a: Int8Codes, m: number, aZero: number, packed: PackedB): Int32Array {
  const { k, n, panels, colSums, bZero } = packed;
  const np = Math.ceil(n / NR);
  const ldc = np * NR;
  // Raw Σ a·b, padded to whole panels; an Int32Array, so every store is taken modulo 2^32.
  const acc = new Int32Array(m * ldc);
  // A's block copied to float64 (one array type in the hot loop whatever A's type), 4 rows interleaved.
  const aPack = new Float64Array(MR * KC);
  for (let k0 = 0; k0 < k; k0 += KC) {
    const kc = Math.min(KC, k - k0);
    let i = 0;
    for (; i + MR <= m; i += MR) {
      for (let r = 0; r < MR; r++) {
        const src = (i + r) * k + k0;
        for (let t = 0; t < kc; t++) aPack[t * MR + r] = a[src + t] as number;
      }
      tile4x8(aPack, panels, acc, kc, k, k0, np, i * ldc, ldc);
    }
    for (; i < m; i++) {
      const src = i * k + k0;
      for (let t = 0; t < kc; t++) aPack[t] = a[src + t] as number;
      row1x8(aPack, panels, acc, kc, k, k0, np, i * ldc);
    }
  }
  return fixUp(a, m, k, n, aZero, colSums, bZero, acc, ldc);
}

/** C [M, N] = MatMulInteger(A, B): checks, packs B, runs gemmInt8Packed. */
export function gemmInt8(p: GemmInt8Problem): Int32Array {
  checkGemmInt8(p);
  return gemmInt8Packed(p.a, p.m, p.aZero, packB(p.b, p.k, p.n, p.bZero));
}

/** Splits a two-lane sum and adds its lanes to columns o and o + 1. */
function addLanes(acc: Int32Array, o: number, v: number): void {
  // |lo| < 2^25 = LANE / 2, so rounding recovers hi exactly (never a tie).
  const hi = Math.round(v * INV_LANE);
  acc[o] = (acc[o] as number) + (v - hi * LANE);
  acc[o + 1] = (acc[o + 1] as number) + hi;
}

/** Adds rows i…i+3 (interleaved in aPack) × every panel over one K block, a 4×8 tile at a time. */
function tile4x8(
  aPack: Float64Array,
  panels: Float64Array,
  acc: Int32Array,
  kc: number,
  k: number,
  k0: number,
  np: number,
  rowBase: number,
  ldc: number,
): void {
  for (let p = 0; p < np; p++) {
    let c00 = 0, c01 = 0, c02 = 0, c03 = 0; // prettier-ignore
    let c10 = 0, c11 = 0, c12 = 0, c13 = 0; // prettier-ignore
    let c20 = 0, c21 = 0, c22 = 0, c23 = 0; // prettier-ignore
    let c30 = 0, c31 = 0, c32 = 0, c33 = 0; // prettier-ignore
    let bi = (p * k + k0) * PAIRS;
    for (let t = 0, ai = 0; t < kc; t++, ai += MR, bi += PAIRS) {
      const a0 = aPack[ai] as number;
      const a1 = aPack[ai + 1] as number;
      const a2 = aPack[ai + 2] as number;
      const a3 = aPack[ai + 3] as number;
      const b0 = panels[bi] as number;
      const b1 = panels[bi + 1] as number;
      const b2 = panels[bi + 2] as number;
      const b3 = panels[bi + 3] as number;
      c00 += a0 * b0;
      c01 += a0 * b1;
      c02 += a0 * b2;
      c03 += a0 * b3;
      c10 += a1 * b0;
      c11 += a1 * b1;
      c12 += a1 * b2;
      c13 += a1 * b3;
      c20 += a2 * b0;
      c21 += a2 * b1;
      c22 += a2 * b2;
      c23 += a2 * b3;
      c30 += a3 * b0;
      c31 += a3 * b1;
      c32 += a3 * b2;
      c33 += a3 * b3;
    }
    let o = rowBase + p * NR;
    addLanes(acc, o, c00);
    addLanes(acc, o + 2, c01);
    addLanes(acc, o + 4, c02);
    addLanes(acc, o + 6, c03);
    o += ldc;
    addLanes(acc, o, c10);
    addLanes(acc, o + 2, c11);
    addLanes(acc, o + 4, c12);
    addLanes(acc, o + 6, c13);
    o += ldc;
    addLanes(acc, o, c20);
    addLanes(acc, o + 2, c21);
    addLanes(acc, o + 4, c22);
    addLanes(acc, o + 6, c23);
    o += ldc;
    addLanes(acc, o, c30);
    addLanes(acc, o + 2, c31);
    addLanes(acc, o + 4, c32);
    addLanes(acc, o + 6, c33);
  }
}

/** One row of A (in aPack) × every panel over one K block: the leftover rows, and M = 1. */
function row1x8(
  aPack: Float64Array,
  panels: Float64Array,
  acc: Int32Array,
  kc: number,
  k: number,
  k0: number,
  np: number,
  rowBase: number,
): void {
  for (let p = 0; p < np; p++) {
    let c0 = 0, c1 = 0, c2 = 0, c3 = 0; // prettier-ignore
    let bi = (p * k + k0) * PAIRS;
    for (let t = 0; t < kc; t++, bi += PAIRS) {
      const a0 = aPack[t] as number;
      c0 += a0 * (panels[bi] as number);
      c1 += a0 * (panels[bi + 1] as number);
      c2 += a0 * (panels[bi + 2] as number);
      c3 += a0 * (panels[bi + 3] as number);
    }
    const o = rowBase + p * NR;
    addLanes(acc, o, c0);
    addLanes(acc, o + 2, c1);
    addLanes(acc, o + 4, c2);
    addLanes(acc, o + 6, c3);
  }
}

/** C = Σ a·b − zb·rowSum(A) − za·colSum(B) + K·za·zb, modulo 2^32, dropping the padded columns. */
function fixUp(
  a: Int8Codes,
  m: number,
  k: number,
  n: number,
  aZero: number,
  colSums: Int32Array,
  bZero: Int32Array,
  acc: Int32Array,
  ldc: number,
): Int32Array {
  // The terms that depend on the column only: K·za·zb − za·colSum(B).
  const colTerm = new Int32Array(n);
  const kza = Math.imul(k, aZero);
  for (let j = 0; j < n; j++)
    colTerm[j] = (Math.imul(kza, bZero[j] as number) - Math.imul(aZero, colSums[j] as number)) | 0;
  const c = new Int32Array(m * n);
  for (let i = 0; i < m; i++) {
    let rowSum = 0;
    for (let t = i * k, end = t + k; t < end; t++) rowSum = (rowSum + (a[t] as number)) | 0;
    for (let j = 0; j < n; j++)
      c[i * n + j] = (acc[i * ldc + j] as number) - Math.imul(bZero[j] as number, rowSum) + (colTerm[j] as number);
  }
  return c;
}

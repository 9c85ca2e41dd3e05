import type { Codebook } from './codebook.js';
import { fp4BnbCodebook, nearestCode, nf4Codebook, FP4_BNB_TABLE, NF4_TABLE } from './codebook.js';
import { makeCodebookLut, type CodebookLut } from './codebook-lut.js';
import { doubleDequantize, doubleQuantize } from './double-quant.js';
import { NonFiniteWeight } from './non-finite-weight.js';

/**
 * 4-bit codebook quantization in the layout of ONNX Runtime's com.microsoft MatMulBnb4
 * (docs/ContribOperators.md): the weight is taken as [N, K] (PyTorch's Linear layout, i.e. the
 * transpose of a MatMul B [K, N]), flattened row-major and cut into blocks of `blockSize`;
 *   B       uint8 [(N·K + 1) / 2], two codes a byte, the FIRST element in the HIGH nibble
 *           (bitsandbytes' order; checked numerically against ORT 1.30, see the tests)
 *   absmax  float32 [ceil(N·K / blockSize)]
 *   value   = table[code] · absmax, quant_type 0 = bitsandbytes FP4, 1 = NF4.
 * The stored constant need not be the true absmax: unless `rtn`, chooseConstant picks, per
 * block, the constant with the least squared error among clipped candidates and a least-squares
 * refinement (plain absmax, bitsandbytes' choice, is the first candidate); which callers ask for
 * it is the pass's rule (passes/weight-only/bnb4-handler.ts dataFreeSearch). With `rtn` the
 * result equals quantizeBlockwise (blockwise.ts) with the same codebook, byte for byte (tested
 * in bnb4-quant.test.ts); this one is faster and sums the SQNR as it goes. Double quantization:
 * MatMulBnb4 reads fp32 constants only, so the constants are double-quantized (QLoRA) and stored
 * dequantized, and the codes re-chosen against them; the bytes a format carrying the 8-bit
 * constants would save are reported.
 */

export type Bnb4Type = 'nf4' | 'fp4';

export interface Bnb4Options {
  readonly type: Bnb4Type;
  readonly blockSize: number;
  readonly rtn?: boolean;
  readonly doubleQuant?: boolean;
}

export interface Bnb4Weights {
  readonly packed: Uint8Array;
  readonly absmax: Float32Array;
  readonly codes: Uint8Array;
  /** Bytes the absmax constants would take double-quantized (8-bit codes + fp32 per 256 + mean). */
  readonly doubleQuantBytes: number | undefined;
  /** Σx² and Σ(x − dequantized x)², summed as quant/metrics sqnrDb sums them (absent: compute it). */
  readonly signalSq?: number;
  readonly noiseSq?: number;
}

export const BNB4_QUANT_TYPE: Record<Bnb4Type, number> = { fp4: 0, nf4: 1 };

export function bnb4Table(type: Bnb4Type): Float32Array {
  return type === 'nf4' ? NF4_TABLE : FP4_BNB_TABLE;
}

function codebookOf(type: Bnb4Type): Codebook {
  return type === 'nf4' ? nf4Codebook() : fp4BnbCodebook();
}

const f = Math.fround;
const RATIOS: Float32Array = Float32Array.from({ length: 31 }, (_, i) => 1 - i * 0.01);

/*
 * Speed: every pass below maps x · (1/s) to a code through a CodebookLut (one table read and one
 * compare, the same code as nearestCode's search; quant/codebook-lut.ts), and the final pass also
 * packs and sums the SQNR, so the handler needs no dequantized copy. When 1/s overflows (a block
 * of subnormals) x · (1/s) can be NaN, which only nearestCode maps (to the zero code): such blocks
 * take it. bnb4-reference.test-util.ts keeps the plain form these must equal byte for byte.
 */

function lutsOf(type: Bnb4Type): CodebookLut {
  return type === 'nf4' ? (nf4Lut ??= makeCodebookLut(nf4Codebook())) : (fp4Lut ??= makeCodebookLut(fp4BnbCodebook()));
}
let nf4Lut: CodebookLut | undefined;
let fp4Lut: CodebookLut | undefined;

function blockError(
  x: Float32Array,
  start: number,
  end: number,
  s: number,
  cb: Codebook,
  l: CodebookLut,
  table: Float32Array,
  limit: number,
): number {
  const inv = f(1 / s);
  let err = 0;
  if (!(inv < Infinity)) {
    for (let i = start; i < end; i++) {
      const v = x[i] as number;
      const d = v - f((table[nearestCode(cb, f(v * inv))] as number) * s);
      err += d * d;
      if (err >= limit) return err;
    }
    return err;
  }
  const { origin, scale, cells, below, above, mid } = l;
  for (let i = start; i < end; i++) {
    const v = x[i] as number;
    const t = f(v * inv);
    let c = Math.floor((t - origin) * scale);
    c = c >= cells ? cells - 1 : c > 0 ? c : 0;
    const code = t > (mid[c] as number) ? (above[c] as number) : (below[c] as number);
    const d = v - f((table[code] as number) * s);
    err += d * d;
    if (err >= limit) return err;
  }
  return err;
}

/**
 * The least-squares constant Σx·t / Σt² (float32) for the block's codes at scale s (t the code's
 * table value); NaN when Σt² = 0.
 */
function leastSquaresScale(
  x: Float32Array,
  start: number,
  end: number,
  s: number,
  cb: Codebook,
  l: CodebookLut,
  table: Float32Array,
): number {
  const inv = f(1 / s);
  const lut = inv < Infinity;
  const { origin, scale, cells, below, above, mid } = l;
  let xt = 0;
  let tt = 0;
  for (let i = start; i < end; i++) {
    const v = x[i] as number;
    const q = f(v * inv);
    let code: number;
    if (lut) {
      let c = Math.floor((q - origin) * scale);
      c = c >= cells ? cells - 1 : c > 0 ? c : 0;
      code = q > (mid[c] as number) ? (above[c] as number) : (below[c] as number);
    } else {
      code = nearestCode(cb, q);
    }
    const t = table[code] as number;
    xt += v * t;
    tt += t * t;
  }
  return tt > 0 ? f(xt / tt) : NaN;
}

function chooseConstant(
  x: Float32Array,
  start: number,
  end: number,
  a: number,
  cb: Codebook,
  l: CodebookLut,
  table: Float32Array,
): number {
  if (a === 0) return 0;
  let best = f(a);
  let bestErr = blockError(x, start, end, best, cb, l, table, Infinity);
  for (let r = 1; r < RATIOS.length; r++) {
    const s = f(a * (RATIOS[r] as number));
    const e = blockError(x, start, end, s, cb, l, table, bestErr);
    if (e < bestErr) {
      bestErr = e;
      best = s;
    }
  }
  for (let it = 0; it < 3; it++) {
    const s = leastSquaresScale(x, start, end, best, cb, l, table);
    if (!(s > 0)) break;
    const e = blockError(x, start, end, s, cb, l, table, bestErr);
    if (!(e < bestErr)) break;
    bestErr = e;
    best = s;
  }
  return best;
}

/** Codes of one block at constant s into codes[], packed into `packed`; Σx² and Σ(x − x̂)² into sums[0..1]. */
function encodeBlock(
  x: Float32Array,
  start: number,
  end: number,
  s: number,
  cb: Codebook,
  l: CodebookLut,
  table: Float32Array,
  codes: Uint8Array,
  packed: Uint8Array,
  sums: Float64Array,
): void {
  let sig = 0;
  let noise = 0;
  if (s === 0) {
    const zero = nearestCode(cb, 0);
    codes.fill(zero, start, end);
    for (let i = start; i < end; i++) {
      const v = x[i] as number;
      const d = v - f((table[zero] as number) * s);
      sig += v * v;
      noise += d * d;
    }
  } else {
    // bitsandbytes multiplies by the float32 reciprocal (kQuantizeBlockwise).
    const inv = f(1 / s);
    const lut = inv < Infinity;
    const { origin, scale, cells, below, above, mid } = l;
    for (let i = start; i < end; i++) {
      const v = x[i] as number;
      const q = f(v * inv);
      let code: number;
      if (lut) {
        let c = Math.floor((q - origin) * scale);
        c = c >= cells ? cells - 1 : c > 0 ? c : 0;
        code = q > (mid[c] as number) ? (above[c] as number) : (below[c] as number);
      } else {
        code = nearestCode(cb, q);
      }
      codes[i] = code;
      const d = v - f((table[code] as number) * s);
      sig += v * v;
      noise += d * d;
    }
  }
  // Two codes a byte, the first in the high nibble.
  let i = start;
  if ((i & 1) === 1 && i < end) {
    packed[i >> 1] = (packed[i >> 1] as number) | (codes[i] as number);
    i++;
  }
  for (; i + 1 < end; i += 2) packed[i >> 1] = ((codes[i] as number) << 4) | (codes[i + 1] as number);
  if (i < end) packed[i >> 1] = (codes[i] as number) << 4;
  sums[0] = sig;
  sums[1] = noise;
}

/**
 * max |x| of a block, from the float32 bit patterns with the sign cleared (their int32 order is
 * the order of magnitudes: an integer max, no branch to mispredict); a pattern at or above
 * +Inf's is ±Inf or NaN, named by the first such element.
 */
const ABS = new Float32Array(1);
const ABS_BITS = new Int32Array(ABS.buffer);
function blockAbsMax(x: Float32Array, xi: Int32Array, start: number, end: number): number {
  let m = 0;
  for (let i = start; i < end; i++) m = Math.max(m, (xi[i] as number) & 0x7fffffff);
  if (m >= 0x7f800000) {
    for (let i = start; i < end; i++)
      if (!Number.isFinite(x[i] as number)) throw new NonFiniteWeight(0, i, x[i] as number);
  }
  ABS_BITS[0] = m;
  return ABS[0] as number;
}

/**
 * A fast twin of the block search and of the encoding (kernels/bnb4-search.ts, WebAssembly SIMD),
 * handed in by the caller so this module stays the plain reference: each gives the same constants,
 * codes and float64 sums as the loops here, or says it did not run (false / undefined) and the
 * loops do the work.
 */
export interface Bnb4FastTwin {
  searchConstants(
    x: Float32Array,
    blockSize: number,
    table: Codebook,
    ratios: Float32Array,
    absmax: Float32Array,
  ): boolean;
  encodeBlocks(
    x: Float32Array,
    blockSize: number,
    table: Codebook,
    constants: Float32Array,
    codes: Uint8Array,
    packed: Uint8Array,
  ): [number, number] | undefined;
}

/** Quantizes the flattened [N, K] weight `wt` (already transposed to the op's layout). */
export function quantizeBnb4(wt: Float32Array, o: Bnb4Options, fast?: Bnb4FastTwin): Bnb4Weights {
  const cb = codebookOf(o.type);
  const l = lutsOf(o.type);
  const table = bnb4Table(o.type);
  const n = wt.length;
  const bs = o.blockSize;
  const nb = Math.ceil(n / bs);
  const bits = new Int32Array(wt.buffer, wt.byteOffset, wt.length);
  let absmax: Float32Array = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const start = b * bs;
    const end = Math.min(start + bs, n);
    absmax[b] = blockAbsMax(wt, bits, start, end);
  }
  if (!o.rtn && !fast?.searchConstants(wt, bs, cb, RATIOS, absmax)) {
    for (let b = 0; b < nb; b++)
      absmax[b] = chooseConstant(wt, b * bs, Math.min((b + 1) * bs, n), absmax[b] as number, cb, l, table);
  }
  let doubleQuantBytes: number | undefined;
  if (o.doubleQuant) {
    const dq = doubleQuantize(absmax);
    const back = doubleDequantize(dq);
    // A block's constant must stay > 0 when it was > 0, or the block would collapse to zero.
    for (let b = 0; b < nb; b++)
      if ((absmax[b] as number) > 0 && !((back[b] as number) > 0)) back[b] = absmax[b] as number;
    absmax = back;
    doubleQuantBytes = nb + 4 * dq.inner.absmax.length + 4;
  }
  const codes = new Uint8Array(n);
  const packed = new Uint8Array(Math.ceil(n / 2));
  const fastSums = fast?.encodeBlocks(wt, bs, cb, absmax, codes, packed);
  let signalSq = fastSums?.[0] ?? 0;
  let noiseSq = fastSums?.[1] ?? 0;
  const sums = new Float64Array(2);
  for (let b = 0; !fastSums && b < nb; b++) {
    encodeBlock(wt, b * bs, Math.min((b + 1) * bs, n), absmax[b] as number, cb, l, table, codes, packed, sums);
    signalSq += sums[0] as number;
    noiseSq += sums[1] as number;
  }
  return { packed, absmax, codes, doubleQuantBytes, signalSq, noiseSq };
}

/** The flattened [N, K] weight as MatMulBnb4 dequantizes it. */
export function dequantizeBnb4(q: Bnb4Weights, type: Bnb4Type, blockSize: number): Float32Array {
  const table = bnb4Table(type);
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++)
    out[i] = f((table[q.codes[i] as number] as number) * (q.absmax[Math.floor(i / blockSize)] as number));
  return out;
}

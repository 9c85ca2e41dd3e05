import type { Codebook } from '../../quant/codebook.js';
import { fp4BnbCodebook, nearestCode, nf4Codebook, FP4_BNB_TABLE, NF4_TABLE } from '../../quant/codebook.js';
import { doubleDequantize, doubleQuantize } from '../../quant/double-quant.js';
import { NonFiniteWeight } from './nbits-quant.js';

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
 * it is dataFreeSearch's rule. --double-quant: MatMulBnb4 reads fp32
 * constants only, so the constants are double-quantized (QLoRA) and stored dequantized, and the
 * codes re-chosen against them; the bytes a format carrying the 8-bit constants would save are
 * reported.
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

function encodeBlock(x: Float32Array, start: number, end: number, s: number, cb: Codebook, codes: Uint8Array): void {
  const zero = nearestCode(cb, 0);
  if (s === 0) { codes.fill(zero, start, end); return; }
  // bitsandbytes multiplies by the float32 reciprocal (kQuantizeBlockwise).
  const inv = f(1 / s);
  for (let i = start; i < end; i++) codes[i] = nearestCode(cb, f((x[i] as number) * inv));
}

function blockError(x: Float32Array, start: number, end: number, s: number, cb: Codebook, table: Float32Array, limit: number): number {
  const inv = f(1 / s);
  let err = 0;
  for (let i = start; i < end; i++) {
    const v = x[i] as number;
    const d = v - f((table[nearestCode(cb, f(v * inv))] as number) * s);
    err += d * d;
    if (err >= limit) return err;
  }
  return err;
}

function chooseConstant(x: Float32Array, start: number, end: number, cb: Codebook, table: Float32Array): number {
  let a = 0;
  for (let i = start; i < end; i++) {
    const m = Math.abs(x[i] as number);
    if (m > a) a = m;
  }
  if (a === 0) return 0;
  let best = f(a);
  let bestErr = blockError(x, start, end, best, cb, table, Infinity);
  for (let r = 1; r < RATIOS.length; r++) {
    const s = f(a * (RATIOS[r] as number));
    const e = blockError(x, start, end, s, cb, table, bestErr);
    if (e < bestErr) { bestErr = e; best = s; }
  }
  for (let it = 0; it < 3; it++) {
    const inv = f(1 / best);
    let xt = 0;
    let tt = 0;
    for (let i = start; i < end; i++) {
      const v = x[i] as number;
      const t = table[nearestCode(cb, f(v * inv))] as number;
      xt += v * t;
      tt += t * t;
    }
    if (!(tt > 0)) break;
    const s = f(xt / tt);
    if (!(s > 0)) break;
    const e = blockError(x, start, end, s, cb, table, bestErr);
    if (!(e < bestErr)) break;
    bestErr = e;
    best = s;
  }
  return best;
}

/**
 * Whether the data-free default searches the per-block constant for `type` (else: absmax, as
 * bitsandbytes and --rtn). The search lowers every block's squared weight error, but that is not
 * what a model's output feels. Measured in ONNX Runtime on every LM the project has (README's
 * scheme table; scripts/measure/weight-only-quality.ts): fp4's search lowers perplexity on each,
 * while nf4's raises it on models/lm.onnx (+2.05 % vs +1.84 % of fp32 for absmax) and on a
 * held-out LM (+3.22 % vs +2.51 %); no variant tried — fewer or milder candidates, least squares
 * only, errors weighted by |w| or w² — stayed at or below absmax on all of them. NF4's levels are
 * quantiles of N(0, 1) normalised to the block's absmax, the scale they were built for. Under GPTQ
 * (gptq-handler.ts), which carries each block's error onto the weights not yet quantized, the
 * search helps nf4 too (lm.onnx +0.99 % vs +1.22 %, both variant LMs likewise), so it keeps it.
 */
export function dataFreeSearch(type: Bnb4Type): boolean {
  return type === 'fp4';
}

/** Quantizes the flattened [N, K] weight `wt` (already transposed to the op's layout). */
export function quantizeBnb4(wt: Float32Array, o: Bnb4Options): Bnb4Weights {
  const cb = codebookOf(o.type);
  const table = bnb4Table(o.type);
  const n = wt.length;
  const bs = o.blockSize;
  const nb = Math.ceil(n / bs);
  for (let i = 0; i < n; i++) {
    const v = wt[i] as number;
    if (!Number.isFinite(v)) throw new NonFiniteWeight(0, i, v);
  }
  let absmax: Float32Array = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const start = b * bs;
    const end = Math.min(start + bs, n);
    if (o.rtn) {
      let a = 0;
      for (let i = start; i < end; i++) a = Math.max(a, Math.abs(wt[i] as number));
      absmax[b] = a;
    } else {
      absmax[b] = chooseConstant(wt, start, end, cb, table);
    }
  }
  let doubleQuantBytes: number | undefined;
  if (o.doubleQuant) {
    const dq = doubleQuantize(absmax);
    const back = doubleDequantize(dq);
    // A block's constant must stay > 0 when it was > 0, or the block would collapse to zero.
    for (let b = 0; b < nb; b++) if ((absmax[b] as number) > 0 && !((back[b] as number) > 0)) back[b] = absmax[b] as number;
    absmax = back;
    doubleQuantBytes = nb + 4 * dq.inner.absmax.length + 4;
  }
  const codes = new Uint8Array(n);
  for (let b = 0; b < nb; b++) encodeBlock(wt, b * bs, Math.min((b + 1) * bs, n), absmax[b] as number, cb, codes);
  const packed = new Uint8Array(Math.ceil(n / 2));
  for (let i = 0; i < n; i++) {
    const c = codes[i] as number;
    packed[i >> 1] = (packed[i >> 1] as number) | ((i & 1) === 0 ? c << 4 : c);
  }
  return { packed, absmax, codes, doubleQuantBytes };
}

/** The flattened [N, K] weight as MatMulBnb4 dequantizes it. */
export function dequantizeBnb4(q: Bnb4Weights, type: Bnb4Type, blockSize: number): Float32Array {
  const table = bnb4Table(type);
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = f((table[q.codes[i] as number] as number) * (q.absmax[Math.floor(i / blockSize)] as number));
  return out;
}

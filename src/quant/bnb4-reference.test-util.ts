import { bnb4Table, type Bnb4Options, type Bnb4Weights } from './bnb4-quant.js';
import { fp4BnbCodebook, nearestCodeReference, nf4Codebook, type Codebook } from './codebook.js';
import { doubleDequantize, doubleQuantize } from './double-quant.js';
import { NonFiniteWeight } from './non-finite-weight.js';

/*
 * The plain form of bnb4-quant.ts's quantizer, as it was before its fast paths: every code from
 * the binary search over the codebook's midpoints (nearestCodeReference), one block at a time.
 * Tests hold the fast quantizer to it byte for byte.
 */

const f = Math.fround;
const RATIOS: Float32Array = Float32Array.from({ length: 31 }, (_, i) => 1 - i * 0.01);

function encodeBlock(x: Float32Array, start: number, end: number, s: number, cb: Codebook, codes: Uint8Array): void {
  const zero = nearestCodeReference(cb, 0);
  if (s === 0) {
    codes.fill(zero, start, end);
    return;
  }
  // bitsandbytes multiplies by the float32 reciprocal (kQuantizeBlockwise).
  const inv = f(1 / s);
  for (let i = start; i < end; i++) codes[i] = nearestCodeReference(cb, f((x[i] as number) * inv));
}

function blockError(
  x: Float32Array,
  start: number,
  end: number,
  s: number,
  cb: Codebook,
  table: Float32Array,
  limit: number,
): number {
  const inv = f(1 / s);
  let err = 0;
  for (let i = start; i < end; i++) {
    const v = x[i] as number;
    const d = v - f((table[nearestCodeReference(cb, f(v * inv))] as number) * s);
    err += d * d;
    if (err >= limit) return err;
  }
  return err;
}

/** The constant of block x[start, end) for any codebook (`table`: its values by code); kernel tests. */
export function chooseConstantReference(
  x: Float32Array,
  start: number,
  end: number,
  cb: Codebook,
  table: Float32Array,
): number {
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
    if (e < bestErr) {
      bestErr = e;
      best = s;
    }
  }
  for (let it = 0; it < 3; it++) {
    const inv = f(1 / best);
    let xt = 0;
    let tt = 0;
    for (let i = start; i < end; i++) {
      const v = x[i] as number;
      const t = table[nearestCodeReference(cb, f(v * inv))] as number;
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

/** Quantizes the flattened [N, K] weight `wt` (already transposed to the op's layout). */
export function quantizeBnb4Reference(wt: Float32Array, o: Bnb4Options): Bnb4Weights {
  const cb = o.type === 'nf4' ? nf4Codebook() : fp4BnbCodebook();
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
      absmax[b] = chooseConstantReference(wt, start, end, cb, table);
    }
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
  for (let b = 0; b < nb; b++) encodeBlock(wt, b * bs, Math.min((b + 1) * bs, n), absmax[b] as number, cb, codes);
  const packed = new Uint8Array(Math.ceil(n / 2));
  for (let i = 0; i < n; i++) {
    const c = codes[i] as number;
    packed[i >> 1] = (packed[i >> 1] as number) | ((i & 1) === 0 ? c << 4 : c);
  }
  return { packed, absmax, codes, doubleQuantBytes };
}

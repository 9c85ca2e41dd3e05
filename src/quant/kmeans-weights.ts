import { QuantkitError } from '../errors.js';
import { nonFiniteError } from './affine.js';
import { makeCodebook, nearestCode } from './codebook.js';
import { kmeans1d } from './kmeans.js';

/*
 * Weight sharing (Han et al., "Deep Compression", §3): each weight is replaced by the index of its
 * nearest centroid in a codebook of k = 2^bits values learned by 1-D k-means (k-means++ seeding,
 * seeded; quant/kmeans.ts). One codebook per tensor (the paper's per-layer sharing) or one per
 * output channel. Storage is the indices plus the codebooks; indices of ≤ 4 bits are packed into
 * bytes in a width that divides 8 (1, 2, 4; 3 bits take a 4-bit slot) so a graph can unpack them
 * with two BitShifts (passes/weight-only/kmeans-handler.ts).
 */

export interface KMeansWeightOptions {
  /** Index width, 1…8 (k = 2^bits centroids). */
  readonly bits: number;
  /** One codebook per slice of this axis (per channel); undefined: one per tensor. */
  readonly axis?: number | undefined;
  readonly seed?: number | undefined;
  readonly maxIterations?: number | undefined;
  /** Starting centroids (quant/kmeans.ts; default k-means++). */
  readonly init?: 'kmeans++' | 'linear' | undefined;
  /**
   * Pruned weights: code 0 is reserved for an exact 0 (the zeros keep it), and k-means runs on the
   * non-zeros with k − 1 centroids, so pruning survives sharing (Deep Compression's pipeline).
   */
  readonly zeroCode?: boolean | undefined;
  /** Tensor name for error messages. */
  readonly name?: string | undefined;
}

export interface KMeansWeights {
  /** One index per element, row-major. */
  readonly codes: Uint8Array;
  /** [groups, k]: group g's centroids, ascending. */
  readonly codebooks: Float32Array;
  readonly groups: number;
  readonly k: number;
  readonly bits: number;
  readonly axis: number | undefined;
  readonly dims: readonly number[];
  /** Code 0 of every codebook is 0, held by exactly the zero weights. */
  readonly zeroCode: boolean;
}

/** The slices of `axis`: outer · C · inner = elements, group of element (o·C + c)·inner + i is c. */
export function axisLayout(
  dims: readonly number[],
  axis: number | undefined,
): { outer: number; C: number; inner: number } {
  const n = dims.reduce((a, b) => a * b, 1);
  if (axis === undefined) return { outer: 1, C: 1, inner: n };
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i] as number;
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i] as number;
  return { outer, C: dims[axis] as number, inner };
}

export function checkKMeansBits(bits: number, min = 1): number {
  if (!Number.isInteger(bits) || bits < min || bits > 8)
    throw new QuantkitError(
      'QK_BAD_BITS',
      `k-means indices need ${min} to 8 bits, got ${bits}`,
      `use \`bits\` ${min}…8 (k = 2^bits centroids)`,
    );
  return bits;
}

/** Group (codebook) of every element. */
export function groupOf(w: Pick<KMeansWeights, 'dims' | 'axis'>): (i: number) => number {
  const { C, inner } = axisLayout(w.dims, w.axis);
  return C === 1 ? () => 0 : (i) => Math.floor(i / inner) % C;
}

export function quantizeKMeansWeights(
  data: Float32Array,
  dims: readonly number[],
  opts: KMeansWeightOptions,
): KMeansWeights {
  const bits = checkKMeansBits(opts.bits, opts.zeroCode ? 2 : 1);
  const k = 2 ** bits;
  const zero = opts.zeroCode ?? false;
  for (let i = 0; i < data.length; i++) {
    const x = data[i] as number;
    if (x - x !== 0) throw nonFiniteError(i, x, opts.name);
  }
  const { outer, C, inner } = axisLayout(dims, opts.axis);
  const codebooks = new Float32Array(C * k);
  const codes = new Uint8Array(data.length);
  const slice = new Float32Array(outer * inner);
  for (let c = 0; c < C; c++) {
    let at = 0;
    for (let o = 0; o < outer; o++) {
      const base = (o * C + c) * inner;
      for (let i = 0; i < inner; i++) {
        const x = data[base + i] as number;
        if (!zero || x !== 0) slice[at++] = x;
      }
    }
    const first = zero ? 1 : 0;
    const table = kmeans1d(slice.subarray(0, at), {
      k: k - first,
      seed: opts.seed,
      maxIterations: opts.maxIterations,
      init: opts.init,
    });
    codebooks.set(table, c * k + first); // with zeroCode, entry 0 stays 0
    const cb = makeCodebook(table);
    for (let o = 0; o < outer; o++) {
      const base = (o * C + c) * inner;
      for (let i = 0; i < inner; i++) {
        const x = data[base + i] as number;
        codes[base + i] = zero && x === 0 ? 0 : first + nearestCode(cb, x);
      }
    }
  }
  return { codes, codebooks, groups: C, k, bits, axis: opts.axis, dims: [...dims], zeroCode: zero };
}

export function dequantizeKMeansWeights(w: KMeansWeights): Float32Array {
  const out = new Float32Array(w.codes.length);
  const group = groupOf(w);
  for (let i = 0; i < out.length; i++) out[i] = w.codebooks[group(i) * w.k + (w.codes[i] as number)] as number;
  return out;
}

/** Bits of the slot an index is stored in: a width dividing 8, so a byte holds whole indices. */
export function indexSlotBits(bits: number): 1 | 2 | 4 | 8 {
  return bits <= 1 ? 1 : bits <= 2 ? 2 : bits <= 4 ? 4 : 8;
}

/** Indices into bytes, `slot` bits each, the first in the HIGH bits of its byte (the last byte zero-padded). */
export function packIndices(codes: Uint8Array, slot: 1 | 2 | 4 | 8): Uint8Array {
  if (slot === 8) return Uint8Array.from(codes);
  const per = 8 / slot;
  const out = new Uint8Array(Math.ceil(codes.length / per));
  const mask = (1 << slot) - 1;
  for (let i = 0; i < codes.length; i++) {
    const j = i % per;
    out[(i / per) | 0] = (out[(i / per) | 0] as number) | (((codes[i] as number) & mask) << (8 - slot * (j + 1)));
  }
  return out;
}

export function unpackIndices(packed: Uint8Array, slot: 1 | 2 | 4 | 8, count: number): Uint8Array {
  if (slot === 8) return packed.slice(0, count);
  const per = 8 / slot;
  const mask = (1 << slot) - 1;
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = ((packed[(i / per) | 0] as number) >> (8 - slot * ((i % per) + 1))) & mask;
  return out;
}

import { QuantkitError } from '../errors.js';

/*
 * Canonical Huffman coding of small alphabets (≤ 256 symbols: k-means indices, sparse-index
 * gaps), the last stage of Deep Compression (Han et al. 2016, §4). A code is fully described by
 * its code lengths: codes are assigned in order of (length, symbol), each the previous plus one,
 * shifted left when the length grows (the DEFLATE construction, RFC 1951 §3.2.2), so a table is
 * one length byte per symbol. Bits are written most significant first.
 *
 * Lengths are capped at MAX_CODE_BITS by halving the counts (rounding up, so no used symbol
 * drops out) until the optimal tree fits: a few tenths of a percent above optimal in the rare
 * skewed cases that need it, and a decoder that never reads more than 24 bits for one symbol.
 * A single used symbol gets a 1-bit code, so every symbol costs at least one bit and a stream's
 * length tells its symbol count.
 */

export const MAX_CODE_BITS = 24;
export const MAX_ALPHABET = 256;

/** Optimal code lengths (Huffman's algorithm) for `counts`; 0 for unused symbols. */
function huffmanLengths(counts: ArrayLike<number>): Uint8Array {
  const n = counts.length;
  const lengths = new Uint8Array(n);
  const used: number[] = [];
  for (let s = 0; s < n; s++) if ((counts[s] as number) > 0) used.push(s);
  if (used.length === 0) return lengths;
  if (used.length === 1) {
    lengths[used[0] as number] = 1;
    return lengths;
  }
  // Nodes: leaves 0…n-1, internal n…; parent links give each leaf's depth. A sorted array used as
  // a priority queue is fine at ≤ 256 symbols; ties break on node id so the result is deterministic.
  const weight: number[] = [];
  const parent: number[] = [];
  for (let s = 0; s < n; s++) {
    weight.push(counts[s] as number);
    parent.push(-1);
  }
  let queue = used.slice();
  const byWeight = (a: number, b: number) => (weight[a] as number) - (weight[b] as number) || a - b;
  queue.sort(byWeight);
  while (queue.length > 1) {
    const a = queue[0] as number;
    const b = queue[1] as number;
    const id = weight.length;
    weight.push((weight[a] as number) + (weight[b] as number));
    parent.push(-1);
    parent[a] = id;
    parent[b] = id;
    queue = queue.slice(2);
    let at = 0;
    while (at < queue.length && byWeight(queue[at] as number, id) < 0) at++;
    queue.splice(at, 0, id);
  }
  for (const s of used) {
    let d = 0;
    for (let p = parent[s] as number; p !== -1; p = parent[p] as number) d++;
    lengths[s] = d;
  }
  return lengths;
}

/** Code lengths for `counts`, none above `maxBits`. */
export function codeLengths(counts: ArrayLike<number>, maxBits = MAX_CODE_BITS): Uint8Array {
  if (counts.length > MAX_ALPHABET) throw new Error(`Huffman alphabet of ${counts.length} symbols`);
  let c = Array.from(counts);
  for (;;) {
    const lengths = huffmanLengths(c);
    if (lengths.every((l) => l <= maxBits)) return lengths;
    c = c.map((x) => (x > 0 ? Math.ceil(x / 2) : 0));
  }
}

export interface CanonicalCode {
  readonly lengths: Uint8Array;
  /** Code of each symbol (valid for symbols of non-zero length). */
  readonly codes: Uint32Array;
}

/**
 * Canonical codes from lengths. Over-subscribed lengths (Kraft sum above 1, which no prefix
 * code has) are refused; an incomplete set (below 1) is a valid prefix code.
 */
export function canonicalCode(lengths: Uint8Array, what = 'Huffman table'): CanonicalCode {
  const blCount = new Uint32Array(MAX_CODE_BITS + 1);
  for (const l of lengths) {
    if (l > MAX_CODE_BITS)
      throw new QuantkitError('QK_COMPRESSED_CORRUPT', `${what}: a code length of ${l} bits`, 'the file is damaged');
    if (l > 0) blCount[l] = (blCount[l] as number) + 1;
  }
  // Kraft: Σ 2^-l ≤ 1, in integers scaled by 2^MAX.
  let kraft = 0;
  for (let l = 1; l <= MAX_CODE_BITS; l++) kraft += (blCount[l] as number) * 2 ** (MAX_CODE_BITS - l);
  if (kraft > 2 ** MAX_CODE_BITS)
    throw new QuantkitError(
      'QK_COMPRESSED_CORRUPT',
      `${what}: code lengths are over-subscribed (no prefix code has them)`,
      'the file is damaged',
    );
  const next = new Uint32Array(MAX_CODE_BITS + 2);
  let code = 0;
  for (let l = 1; l <= MAX_CODE_BITS; l++) {
    code = (code + (blCount[l - 1] as number)) * 2; // blCount[0] is 0: the first code is 0
    next[l] = code;
  }
  const codes = new Uint32Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s] as number;
    if (l === 0) continue;
    codes[s] = next[l] as number;
    next[l] = (next[l] as number) + 1;
  }
  return { lengths, codes };
}

/** Most-significant-bit-first bit writer. */
export class BitWriter {
  private bytes = new Uint8Array(256);
  private at = 0; // bytes complete
  private acc = 0; // pending bits (fewer than 8), right-aligned
  private pending = 0;

  write(value: number, bits: number): void {
    for (let b = bits - 1; b >= 0; b--) {
      this.acc = (this.acc << 1) | ((value >>> b) & 1);
      if (++this.pending === 8) {
        if (this.at === this.bytes.length) {
          const grown = new Uint8Array(this.bytes.length * 2);
          grown.set(this.bytes);
          this.bytes = grown;
        }
        this.bytes[this.at++] = this.acc;
        this.acc = 0;
        this.pending = 0;
      }
    }
  }

  get bitLength(): number {
    return this.at * 8 + this.pending;
  }

  /** The bytes, the last one zero-padded. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.at + (this.pending > 0 ? 1 : 0));
    out.set(this.bytes.subarray(0, this.at));
    if (this.pending > 0) out[this.at] = this.acc << (8 - this.pending);
    return out;
  }
}

/** Symbols to a bitstream; returns the bytes and the exact bit count. */
export function huffmanEncode(symbols: ArrayLike<number>, code: CanonicalCode): { bytes: Uint8Array; bits: number } {
  const w = new BitWriter();
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i] as number;
    const l = code.lengths[s] ?? 0;
    if (l === 0) throw new Error(`symbol ${s} has no Huffman code`);
    w.write(code.codes[s] as number, l);
  }
  return { bits: w.bitLength, bytes: w.finish() };
}

/** Symbol counts over an alphabet of `size`. */
export function symbolCounts(symbols: ArrayLike<number>, size: number): Float64Array {
  const counts = new Float64Array(size);
  for (let i = 0; i < symbols.length; i++) counts[symbols[i] as number] = (counts[symbols[i] as number] as number) + 1;
  return counts;
}

/**
 * Decodes `count` symbols from `bits` bits of `bytes` (canonical decoding, one bit at a time
 * against the first code of each length: puff.c's method). A stream that ends early, runs into a
 * code no symbol has, or leaves bits unread is damaged.
 */
export function huffmanDecode(
  bytes: Uint8Array,
  bits: number,
  lengths: Uint8Array,
  count: number,
  what = 'Huffman stream',
): Uint8Array {
  canonicalCode(lengths, what); // validates the lengths
  if (bits > bytes.length * 8 || bits < 0)
    throw new QuantkitError(
      'QK_COMPRESSED_CORRUPT',
      `${what}: ${bits} bits in ${bytes.length} bytes`,
      'the file is damaged',
    );
  const blCount = new Uint32Array(MAX_CODE_BITS + 1);
  for (const l of lengths) if (l > 0) blCount[l] = (blCount[l] as number) + 1;
  // Symbols in canonical order: by length, then symbol.
  const sorted: number[] = [];
  for (let l = 1; l <= MAX_CODE_BITS; l++)
    for (let s = 0; s < lengths.length; s++) if (lengths[s] === l) sorted.push(s);
  let maxLen = 0;
  for (const l of lengths) maxLen = Math.max(maxLen, l);
  const out = new Uint8Array(count);
  let pos = 0;
  const damaged = (why: string) =>
    new QuantkitError('QK_COMPRESSED_CORRUPT', `${what}: ${why} at bit ${pos}`, 'the file is damaged');
  for (let i = 0; i < count; i++) {
    let code = 0;
    let first = 0;
    let index = 0;
    let found = -1;
    for (let l = 1; l <= maxLen; l++) {
      if (pos >= bits) throw damaged(`the stream ends after ${i} of ${count} symbols`);
      code |= ((bytes[pos >> 3] as number) >> (7 - (pos & 7))) & 1;
      pos++;
      const n = blCount[l] as number;
      if (code - first < n) {
        found = sorted[index + code - first] as number;
        break;
      }
      index += n;
      first = (first + n) * 2;
      code *= 2;
    }
    if (found < 0) throw damaged('a code no symbol has');
    out[i] = found;
  }
  if (pos !== bits) throw damaged(`${bits - pos} bits left over after ${count} symbols`);
  if ((bits & 7) !== 0 && ((bytes[bits >> 3] as number) & (0xff >> (bits & 7))) !== 0)
    throw damaged('padding bits that are not zero');
  return out;
}

import { QuantkitError } from '../errors.js';

/*
 * Deep Compression's sparse storage (Han et al. 2016, §2 and Figure 2): a pruned tensor keeps
 * only its non-zero entries, each with the distance from the previous one (a relative index of
 * `gapBits` bits) instead of its position. A gap wider than the field can hold is bridged by a
 * filler entry: a zero stored as if it were a weight, placed 2^gapBits − 1 zeros further on.
 *
 * Here an entry's gap is the number of background elements skipped before it (the paper's
 * difference minus one, so that a field of b bits reaches 2^b − 1 zeros and adjacent non-zeros
 * have gap 0). Elements after the last entry are background. "Background" is one code (the
 * zero's k-means index), so the same storage serves any code array.
 */

export interface SparseEntries {
  /** Background elements skipped before each entry, each < 2^gapBits. */
  readonly gaps: Uint8Array;
  /** The code of each entry (the background code for a filler). */
  readonly codes: Uint8Array;
  readonly fillers: number;
}

export function checkGapBits(gapBits: number): number {
  if (!Number.isInteger(gapBits) || gapBits < 1 || gapBits > 8)
    throw new QuantkitError('QK_BAD_OPTION', `a relative index needs 1 to 8 bits, got ${gapBits}`, 'use 1…8');
  return gapBits;
}

/** The entries of `codes` that are not `background`, with filler entries where a gap overflows. */
export function encodeSparse(codes: Uint8Array, background: number, gapBits: number): SparseEntries {
  const maxGap = 2 ** checkGapBits(gapBits) - 1;
  const gaps: number[] = [];
  const out: number[] = [];
  let fillers = 0;
  let run = 0;
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] as number;
    if (c === background) {
      // A run that fills the field: the next background element becomes a filler entry.
      if (run === maxGap) {
        gaps.push(run);
        out.push(background);
        fillers++;
        run = 0;
      } else run++;
      continue;
    }
    gaps.push(run);
    out.push(c);
    run = 0;
  }
  return { gaps: Uint8Array.from(gaps), codes: Uint8Array.from(out), fillers };
}

/** The dense codes back (`count` elements), refusing entries that run past the end. */
export function decodeSparse(
  entries: Pick<SparseEntries, 'gaps' | 'codes'>,
  background: number,
  count: number,
  what = 'sparse tensor',
): Uint8Array {
  if (entries.gaps.length !== entries.codes.length)
    throw new QuantkitError(
      'QK_COMPRESSED_CORRUPT',
      `${what}: ${entries.gaps.length} relative indices for ${entries.codes.length} codes`,
      'the file is damaged',
    );
  const out = new Uint8Array(count).fill(background);
  let pos = -1;
  for (let e = 0; e < entries.gaps.length; e++) {
    pos += (entries.gaps[e] as number) + 1;
    if (pos >= count)
      throw new QuantkitError(
        'QK_COMPRESSED_CORRUPT',
        `${what}: entry ${e} lands at element ${pos} of ${count}`,
        'the file is damaged',
      );
    out[pos] = entries.codes[e] as number;
  }
  return out;
}

/**
 * The relative-index width with the fewest stored bits (entries × (gapBits + codeBits)) before
 * entropy coding: narrow fields cost fillers, wide ones cost every entry.
 */
export function bestGapBits(codes: Uint8Array, background: number, codeBits: number): number {
  let best = 8;
  let bestBits = Infinity;
  for (let b = 1; b <= 8; b++) {
    const maxGap = 2 ** b - 1;
    let entries = 0;
    let run = 0;
    for (let i = 0; i < codes.length; i++) {
      if (codes[i] === background) {
        if (run === maxGap) {
          entries++;
          run = 0;
        } else run++;
      } else {
        entries++;
        run = 0;
      }
    }
    const bits = entries * (b + codeBits);
    if (bits < bestBits) {
      bestBits = bits;
      best = b;
    }
  }
  return best;
}

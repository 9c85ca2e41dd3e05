import type { Codebook } from './codebook.js';

/**
 * A codebook's nearest-code lookup as one table read and one compare: the line is cut into equal
 * cells, fine enough that no cell holds two midpoints; a value's cell gives the code below the
 * cell's midpoint (if any) and the code above it. Same answer as nearestCode for every number —
 * the cell index is monotone in x, so every midpoint in a lower cell is below x and every one in a
 * higher cell above it (the codebook's own bucketing argument), and x > midpoint is the same
 * strict comparison ('lower-value' ties). Finite and infinite x only: the callers never pass NaN.
 */
export interface CodebookLut {
  readonly origin: number;
  readonly scale: number;
  readonly cells: number;
  /** Code for x ≤ the cell's midpoint (or for the whole cell without one). */
  readonly below: Uint8Array;
  /** Code for x > the cell's midpoint. */
  readonly above: Uint8Array;
  /** The cell's midpoint, or +Infinity. */
  readonly mid: Float64Array;
}

export function cellOf(x: number, origin: number, scale: number, cells: number): number {
  const c = Math.floor((x - origin) * scale);
  return c >= cells ? cells - 1 : c > 0 ? c : 0;
}

export function makeCodebookLut(cb: Codebook): CodebookLut {
  if (cb.tie !== 'lower-value') throw new Error('codebook LUT: only lower-value ties');
  const m = cb.midpoints;
  const first = m.length > 0 ? (m[0] as number) : 0;
  const last = m.length > 0 ? (m[m.length - 1] as number) : 0;
  for (let cells = 1024; ; cells *= 2) {
    const span = last - first;
    const origin = first - span / 64 - 1e-3;
    const scale = cells / (last + span / 64 + 1e-3 - origin);
    const below = new Uint8Array(cells);
    const above = new Uint8Array(cells);
    const mid = new Float64Array(cells).fill(Infinity);
    let ok = true;
    let k = 0; // midpoints in lower cells
    for (let c = 0; c < cells && ok; c++) {
      let inCell = 0;
      while (k + inCell < m.length && cellOf(m[k + inCell] as number, origin, scale, cells) === c) inCell++;
      if (inCell > 1) ok = false;
      below[c] = cb.sortedCodes[k] as number;
      if (inCell === 1) {
        mid[c] = m[k] as number;
        above[c] = cb.sortedCodes[k + 1] as number;
        k++;
      } else {
        above[c] = below[c] as number;
      }
    }
    if (ok) return { origin, scale, cells, below, above, mid };
  }
}

/** The code whose value is nearest to x (x not NaN): nearestCode's answer. */
export function lutCode(l: CodebookLut, x: number): number {
  const c = cellOf(x, l.origin, l.scale, l.cells);
  return x > (l.mid[c] as number) ? (l.above[c] as number) : (l.below[c] as number);
}

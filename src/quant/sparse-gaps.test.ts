import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bestGapBits, decodeSparse, encodeSparse } from './sparse-gaps.js';

describe('sparse storage with relative indices (Deep Compression §2)', () => {
  it('hand-worked, 3-bit gaps: a run of 10 zeros takes one filler (7 zeros, then the filler itself)', () => {
    // positions:     0  1  2  3 … 13 14
    const codes = Uint8Array.of(0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0);
    const s = encodeSparse(codes, 0, 3);
    // 5 at 1: one zero skipped; then 11 zeros before 7 at 13: 7 skipped + filler at 9, 3 more skipped.
    expect(Array.from(s.gaps)).toEqual([1, 7, 3]);
    expect(Array.from(s.codes)).toEqual([5, 0, 7]);
    expect(s.fillers).toBe(1);
    expect(Array.from(decodeSparse(s, 0, codes.length))).toEqual(Array.from(codes));
  });

  it('round-trips any codes at any width, and every gap fits its field (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 15 })), {
          maxLength: 600,
        }),
        fc.integer({ min: 1, max: 8 }),
        (arr, gapBits) => {
          const codes = Uint8Array.from(arr);
          const s = encodeSparse(codes, 0, gapBits);
          for (const g of s.gaps) expect(g).toBeLessThan(2 ** gapBits);
          expect(Array.from(decodeSparse(s, 0, codes.length))).toEqual(arr);
        },
      ),
    );
  });

  it('a long zero run wants wide gaps, a dense tensor narrow ones', () => {
    const sparse = new Uint8Array(5000);
    for (let i = 0; i < 5000; i += 40) sparse[i] = 3;
    expect(bestGapBits(sparse, 0, 4)).toBe(6);
    const dense = Uint8Array.from({ length: 500 }, (_, i) => 1 + (i % 3));
    expect(bestGapBits(dense, 0, 4)).toBe(1);
  });

  it('entries that run past the end, or counts that disagree, are named errors', () => {
    expect(() => decodeSparse({ gaps: Uint8Array.of(3, 3), codes: Uint8Array.of(1, 1) }, 0, 6)).toThrow(
      /lands at element 7 of 6/,
    );
    expect(() => decodeSparse({ gaps: Uint8Array.of(1), codes: Uint8Array.of() }, 0, 6)).toThrow(/1 relative indices/);
  });
});

import { describe, expect, it } from 'vitest';
import { fp4BnbCodebook, makeCodebook, nearestCodeReference, nf4Codebook } from './codebook.js';
import { lutCode, makeCodebookLut } from './codebook-lut.js';

describe('codebook LUT: the binary search over the midpoints, one read and one compare', () => {
  const books = {
    nf4: nf4Codebook(),
    fp4: fp4BnbCodebook(),
    uneven: makeCodebook(Float32Array.of(-3, -2.999, 0, 0.001, 0.0011, 5)),
  };
  for (const [name, cb] of Object.entries(books)) {
    it(`${name}: equal on midpoints, their float neighbours, the table values, ±0, ±Inf and a dense sweep`, () => {
      const lut = makeCodebookLut(cb);
      const xs: number[] = [0, -0, Infinity, -Infinity, 1e30, -1e30, ...cb.values];
      for (const m of cb.midpoints) {
        const f = Math.fround(m);
        xs.push(
          m,
          f,
          m + Number.EPSILON * Math.abs(m),
          m - Number.EPSILON * Math.abs(m),
          Math.fround(f * (1 + 2 ** -23)),
          Math.fround(f * (1 - 2 ** -23)),
        );
      }
      for (let i = -300000; i <= 300000; i++) xs.push(Math.fround(i * 7.3e-6), i * 1e-3);
      let diff = 0;
      for (const x of xs) if (lutCode(lut, x) !== nearestCodeReference(cb, x)) diff++;
      expect(diff).toBe(0);
    });
  }
});

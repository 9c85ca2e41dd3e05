import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kmeans1d } from './kmeans.js';
import {
  dequantizeKMeansWeights,
  indexSlotBits,
  packIndices,
  quantizeKMeansWeights,
  unpackIndices,
} from './kmeans-weights.js';

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => u() + u() + u() + u() - 2);
}

describe('k-means weight sharing', () => {
  it('packing indices then unpacking is the identity for every slot width and length', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 4, 8), fc.uint8Array({ maxLength: 41 }), (slot, raw) => {
        const codes = raw.map((v) => v & ((1 << slot) - 1));
        const packed = packIndices(codes, slot as 1 | 2 | 4 | 8);
        expect(packed.length).toBe(Math.ceil((codes.length * slot) / 8));
        expect(Array.from(unpackIndices(packed, slot as 1 | 2 | 4 | 8, codes.length))).toEqual(Array.from(codes));
      }),
    );
  });

  it('packs the first index in the high bits (hand-worked: 2-bit 1,2,3,0 → 0b01101100)', () => {
    expect(Array.from(packIndices(Uint8Array.of(1, 2, 3, 0, 3), 2))).toEqual([0b01101100, 0b11000000]);
    expect([1, 2, 3, 4, 5, 8].map(indexSlotBits)).toEqual([1, 2, 4, 4, 8, 8]);
  });

  it('each index is its nearest centroid and each centroid the mean of its members (a Lloyd fixed point)', () => {
    const dims = [12, 10];
    const data = randn(120, 3);
    for (const axis of [undefined, 0, 1]) {
      const w = quantizeKMeansWeights(data, dims, { bits: 3, axis, seed: 5, maxIterations: 500 });
      const C = axis === undefined ? 1 : (dims[axis] as number);
      expect(w.groups).toBe(C);
      const group = (i: number) => (axis === undefined ? 0 : axis === 0 ? Math.floor(i / 10) : i % 10);
      const sum = new Float64Array(C * 8);
      const count = new Float64Array(C * 8);
      for (let i = 0; i < data.length; i++) {
        const g = group(i);
        const x = data[i] as number;
        const code = w.codes[i] as number;
        for (let c = 0; c < 8; c++)
          expect(Math.abs(x - (w.codebooks[g * 8 + code] as number))).toBeLessThanOrEqual(
            Math.abs(x - (w.codebooks[g * 8 + c] as number)),
          );
        sum[g * 8 + code] = (sum[g * 8 + code] as number) + x;
        count[g * 8 + code] = (count[g * 8 + code] as number) + 1;
      }
      for (let j = 0; j < C * 8; j++)
        if ((count[j] as number) > 0)
          expect(w.codebooks[j] as number).toBeCloseTo((sum[j] as number) / (count[j] as number), 5);
      const back = dequantizeKMeansWeights(w);
      for (let i = 0; i < data.length; i++) expect(back[i]).toBe(w.codebooks[group(i) * 8 + (w.codes[i] as number)]);
    }
  });

  it('the same seed gives the same codebook; per channel beats per tensor on error', () => {
    const data = randn(4096, 9);
    for (let i = 0; i < 64; i++)
      for (let j = 0; j < 64; j++) data[i * 64 + j] = (data[i * 64 + j] as number) * (1 + (j % 8));
    const a = quantizeKMeansWeights(data, [64, 64], { bits: 4, seed: 2 });
    const b = quantizeKMeansWeights(data, [64, 64], { bits: 4, seed: 2 });
    expect(Array.from(a.codebooks)).toEqual(Array.from(b.codebooks));
    const err = (w: typeof a) => {
      const back = dequantizeKMeansWeights(w);
      let s = 0;
      for (let i = 0; i < data.length; i++) s += ((data[i] as number) - (back[i] as number)) ** 2;
      return s;
    };
    expect(err(quantizeKMeansWeights(data, [64, 64], { bits: 4, axis: 1, seed: 2 }))).toBeLessThan(err(a));
  });

  it('zeroCode keeps every zero exact (code 0 = 0.0) and no non-zero on code 0', () => {
    const data = randn(300, 4);
    for (let i = 0; i < 300; i += 3) data[i] = 0;
    const w = quantizeKMeansWeights(data, [300], { bits: 2, zeroCode: true });
    expect(w.codebooks[0]).toBe(0);
    for (let i = 0; i < 300; i++) expect(w.codes[i] === 0).toBe(data[i] === 0);
  });

  it('bad widths and non-finite weights are named errors', () => {
    expect(() => quantizeKMeansWeights(randn(8, 1), [8], { bits: 9 })).toThrow(/1 to 8 bits/);
    expect(() => quantizeKMeansWeights(randn(8, 1), [8], { bits: 1, zeroCode: true })).toThrow(/2 to 8 bits/);
    const bad = randn(8, 1);
    bad[3] = NaN;
    expect(() => quantizeKMeansWeights(bad, [8], { bits: 4, name: 'w' })).toThrow(/w/);
  });
});

describe('k-means linear initialization', () => {
  it('starts evenly over [min, max] and runs Lloyd from there (hand-worked; an empty cluster keeps its centre)', () => {
    // Start 0, 5, 10: {0 … 0.3} → 0.15, nothing near 5, {10} → 10; the midpoints do not move again.
    const c = kmeans1d(Float32Array.from([0, 0.1, 0.2, 0.3, 10]), { k: 3, init: 'linear' });
    expect(c[0]).toBeCloseTo(0.15, 6);
    expect([c[1], c[2]]).toEqual([5, 10]);
  });
});

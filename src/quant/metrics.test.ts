import { describe, expect, it } from 'vitest';
import { cosineSimilarity, maxAbsError, mse, rowCosineAndTop1, sqnrDb } from './metrics.js';

describe('error metrics (hand-worked)', () => {
  const x = Float32Array.of(3, 4, 0, 0);
  const y = Float32Array.of(3, 3, 1, 0);
  it('mse, max abs error', () => {
    expect(mse(x, y)).toBe(0.5);
    expect(maxAbsError(x, y)).toBe(1);
  });
  it('SQNR: 10·log10(25 / 2); Infinity when exact', () => {
    expect(sqnrDb(x, y)).toBeCloseTo(10 * Math.log10(12.5), 12);
    expect(sqnrDb(x, x)).toBe(Infinity);
  });
  it('cosine similarity: 21 / (5·√19); orthogonal 0; zero vectors', () => {
    expect(cosineSimilarity(x, y)).toBeCloseTo(21 / (5 * Math.sqrt(19)), 12);
    expect(cosineSimilarity(Float32Array.of(1, 0), Float32Array.of(0, 2))).toBe(0);
    expect(cosineSimilarity(new Float32Array(2), new Float32Array(2))).toBe(1);
  });
  it('length mismatch is a named error', () => {
    expect(() => mse(x, Float32Array.of(1))).toThrow(/4 and 1 elements/);
  });
});

describe('rowCosineAndTop1', () => {
  it('averages each row’s cosine and counts rows whose first maximum agrees (hand-worked)', () => {
    // row 0: identical → cos 1, argmax 1 both; row 1: [1,0] vs [0,1] → cos 0, argmax 0 vs 1;
    // row 2: [2,2] vs [1,3] → cos 8/(√8·√10) = 0.8944…, argmax 0 (first of a tie) vs 1.
    const a = new Float32Array([0, 5, 1, 0, 2, 2]);
    const b = new Float32Array([0, 5, 0, 1, 1, 3]);
    const r = rowCosineAndTop1(a, b, 2);
    expect(r.cosine).toBeCloseTo((1 + 0 + 8 / Math.sqrt(80)) / 3, 12);
    expect(r.top1).toBeCloseTo(1 / 3, 12);
  });
  it('a zero row pair counts as cosine 1; no rows gives 1 and 1', () => {
    expect(rowCosineAndTop1(new Float32Array([0, 0]), new Float32Array([0, 0]), 2)).toEqual({ cosine: 1, top1: 1 });
    expect(rowCosineAndTop1(new Float32Array(0), new Float32Array(0), 4)).toEqual({ cosine: 1, top1: 1 });
  });
});

import { describe, expect, it } from 'vitest';
import { cosineSimilarity, maxAbsError, mse, sqnrDb } from './metrics.js';

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

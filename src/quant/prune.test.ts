import { describe, expect, it } from 'vitest';
import { applyMask, magnitudeMask, zeroFraction } from './prune.js';

describe('magnitude pruning', () => {
  it('zeroes exactly round(s·n) smallest magnitudes, ties to the lower index (hand-worked)', () => {
    const w = Float32Array.of(0.5, -0.1, 0.1, 2, -3, 0.05);
    expect(Array.from(magnitudeMask(w, 0.5))).toEqual([0, 1, 1, 0, 0, 1]);
    expect(Array.from(applyMask(w, magnitudeMask(w, 0.34)))).toEqual([0.5, 0, 0.10000000149011612, 2, -3, 0]);
    expect(zeroFraction(applyMask(w, magnitudeMask(w, 0.5)))).toBe(0.5);
  });

  it('every kept weight is at least as large as every pruned one', () => {
    const w = Float32Array.from({ length: 1000 }, (_, i) => (Math.sin(i * 12.9898) * 43758.5453) % 1);
    const mask = magnitudeMask(w, 0.8);
    let maxPruned = 0;
    let minKept = Infinity;
    w.forEach((x, i) => {
      if (mask[i]) maxPruned = Math.max(maxPruned, Math.abs(x));
      else minKept = Math.min(minKept, Math.abs(x));
    });
    expect(maxPruned).toBeLessThanOrEqual(minKept);
    expect(mask.reduce((a, b) => a + b, 0)).toBe(800);
  });

  it('a sparsity outside [0, 1) is a named error', () => {
    expect(() => magnitudeMask(Float32Array.of(1), 1)).toThrow(/not in \[0, 1\)/);
    expect(() => magnitudeMask(Float32Array.of(1), NaN)).toThrow(/QK|not in/);
  });
});

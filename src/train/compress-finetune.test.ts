import { describe, expect, it } from 'vitest';
import { dequantizeKMeansWeights, quantizeKMeansWeights } from '../quant/kmeans-weights.js';
import { mulberry32 } from '../quant/prng.js';
import { allocateSparsity, centroidGradients, sparsityAt } from './compress-finetune.js';

describe('k-means fine-tuning gradient', () => {
  it('equals central finite differences of a loss through the rebuilt weight (per tensor and per channel, zero centroid fixed)', () => {
    const r = mulberry32(3);
    const dims = [6, 10];
    const data = Float32Array.from({ length: 60 }, () => r() - 0.5);
    for (let i = 0; i < 60; i += 4) data[i] = 0;
    const c = Float64Array.from({ length: 60 }, () => r());
    const b = Float64Array.from({ length: 60 }, () => r() - 0.5);
    // L(W) = Σ c_i W_i² + b_i W_i, so ∂L/∂W_i = 2 c_i W_i + b_i.
    const loss = (W: Float32Array) => W.reduce((s, x, i) => s + c[i]! * x * x + b[i]! * x, 0);
    for (const [axis, zeroCode] of [
      [undefined, false],
      [1, false],
      [0, true],
    ] as const) {
      const w = quantizeKMeansWeights(data, dims, { bits: 2, axis, zeroCode });
      const W = dequantizeKMeansWeights(w);
      const grad = centroidGradients(
        w,
        Float32Array.from(W, (x, i) => 2 * c[i]! * x + b[i]!),
      );
      const h = 1e-3;
      for (let j = 0; j < w.codebooks.length; j++) {
        const at = (d: number) => {
          const cb = Float32Array.from(w.codebooks);
          cb[j] = cb[j]! + d;
          return loss(dequantizeKMeansWeights({ ...w, codebooks: cb }));
        };
        const fd = (at(h) - at(-h)) / (2 * h);
        if (zeroCode && j % w.k === 0) expect(grad[j]).toBe(0);
        else expect(grad[j]).toBeCloseTo(fd, 2);
      }
    }
  });
});

describe('pruning schedule', () => {
  it('cubic from the initial to the final sparsity over [begin, end), constant outside (hand-worked)', () => {
    const s = { final: 0.8, begin: 10, end: 110 };
    expect(sparsityAt(0, 200, s)).toBe(0);
    expect(sparsityAt(10, 200, s)).toBe(0);
    expect(sparsityAt(60, 200, s)).toBeCloseTo(0.8 * (1 - 0.5 ** 3), 12); // 0.7
    expect(sparsityAt(110, 200, s)).toBe(0.8);
    expect(sparsityAt(199, 200, s)).toBe(0.8);
    // Every 25 steps: held between pruning steps.
    expect(sparsityAt(34, 200, { ...s, every: 25 })).toBe(sparsityAt(10, 200, s));
    expect(sparsityAt(35, 200, { ...s, every: 25 })).toBeCloseTo(0.8 * (1 - 0.75 ** 3), 12);
  });
});

describe('per-layer sparsity by sensitivity', () => {
  const levels = [0, 0.5, 0.9];
  const a = { elements: 100, increase: [0, 0.1, 1] };
  const b = { elements: 1000, increase: [0, 0.2, 0.5] };
  it('buys the level of least loss per removed weight, the last one cut to the target (hand-worked)', () => {
    // Need 550: B to 0.5 (0.2/500 per weight) beats A (0.1/50); then B to 0.9 (0.3/400) beats
    // A to 0.5 (0.1/50), overshooting by 350 weights, so B ends at 0.9 − 0.35.
    expect(allocateSparsity([a, b], levels, 0.5)).toEqual([0, 0.55]);
    // Need 990: B 0.9 (900), A 0.5 (950), A 0.9 (990).
    expect(allocateSparsity([a, b], levels, 0.9)).toEqual([0.9, 0.9]);
  });
  it('a noisy curve is made non-decreasing (a level below zero cost is free, not a gain)', () => {
    const noisy = { elements: 100, increase: [0, -0.05, 0.3] };
    expect(allocateSparsity([a, noisy], levels, 0.25)).toEqual([0, 0.5]);
  });
});

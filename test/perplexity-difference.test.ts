import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lmPerplexity, perplexityDifference, type PerplexityResult } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { readNpy } from '../src/io/npy/npy.js';

const result = (windowNll: number[], tokens: number): PerplexityResult => {
  const total = windowNll.reduce((a, b) => a + b, 0);
  return {
    crossEntropy: total / tokens,
    perplexity: Math.exp(total / tokens),
    tokens,
    windowNll: Float64Array.from(windowNll),
  };
};

describe('perplexityDifference', () => {
  it('pairs the windows: a hand-worked example', () => {
    // Three windows of two tokens. Differences 0.5, 0.5, 1: mean 2/3 nats a window, 1/3 a token.
    // Their sample deviation is sqrt(1/12); over sqrt(3) windows and 2 tokens a window: 1/12.
    const d = perplexityDifference(result([1, 2, 3], 6), result([0.5, 1.5, 2], 6));
    expect(d.change).toBeCloseTo(Math.exp(1 / 3) - 1, 12);
    expect(d.standardError).toBeCloseTo(1 / 12, 12);
  });

  it('refuses results on different windows', () => {
    expect(() => perplexityDifference(result([1, 2], 4), result([1, 2, 3], 6))).toThrow(/same windows/);
  });

  it('on the shipped LM: window sums make up the cross-entropy, and a quantized model differs by a resolved amount', async () => {
    const bytes = readFileSync(new URL('../models/lm.onnx', import.meta.url));
    const windows = readNpy(readFileSync(new URL('../models/lm-eval.npy', import.meta.url)));
    const fp32 = await lmPerplexity(bytes, windows);
    const sum = fp32.windowNll.reduce((a, b) => a + b, 0);
    expect(sum / fp32.tokens).toBeCloseTo(fp32.crossEntropy, 10);
    expect(perplexityDifference(fp32, fp32)).toEqual({ change: 0, standardError: 0 });
    const q2 = await lmPerplexity((await quantizeModelBytes(bytes, { scheme: 'q2', blockSize: 32 })).bytes, windows);
    const d = perplexityDifference(q2, fp32);
    expect(d.change).toBeCloseTo(q2.perplexity / fp32.perplexity - 1, 10);
    // 2-bit weights cost the LM tens of percent, many standard errors away from zero.
    expect(Math.log1p(d.change) / d.standardError).toBeGreaterThan(10);
  });
});

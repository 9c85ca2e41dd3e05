import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { readNpy } from '../src/io/npy/npy.js';
import type { SchemeName } from '../src/passes/weight-only/index.js';
import type { Tensor } from '../src/tensor/tensor.js';

/*
 * Every scheme on the project's two small models (scripts/models/make_models.py), run in
 * onnxruntime-node, with the quality budgets of issue 6 stated in the test names.
 */

const ALL: SchemeName[] = ['int8', 'q4', 'q4-asym', 'q8-block', 'nf4', 'fp4', 'fp16', 'bf16', 'fp8', 'fp8-e5m2'];
const model = (name: string) => new URL(`../models/${name}`, import.meta.url).pathname;

// The shipped models (scripts/models/make_models.py makes them; they are committed).

describe('digits CNN (BatchNormalization folded first)', () => {
  let bytes: Uint8Array;
  let x: Tensor;
  let y: Tensor;
  let base: Awaited<ReturnType<typeof classifierAccuracy>>;
  beforeAll(async () => {
    bytes = readFileSync(model('cnn.onnx'));
    x = readNpy(readFileSync(model('cnn-test-x.npy')));
    y = readNpy(readFileSync(model('cnn-test-y.npy')));
    base = await classifierAccuracy(bytes, x, y);
  });

  const budget: Partial<Record<SchemeName, number>> = { int8: 0.005, fp16: 0.005 };
  for (const scheme of ALL) {
    const b = budget[scheme];
    it(
      b !== undefined
        ? `${scheme}: runs in ORT, accuracy drops ≤ ${b * 100} %`
        : `${scheme}: runs in ORT, accuracy drops ≤ 3 %`,
      async () => {
        const q = quantizeModelBytes(bytes, { scheme });
        expect(q.report.notes.join(' ')).toContain('BatchNormalization nodes folded');
        const r = await classifierAccuracy(q.bytes, x, y, base.logits);
        expect(base.accuracy - r.accuracy).toBeLessThanOrEqual((b ?? 0.03) + 1e-9);
      },
    );
  }
});

describe('char transformer LM perplexity', () => {
  let bytes: Uint8Array;
  let windows: Tensor;
  let base: number;
  beforeAll(async () => {
    bytes = readFileSync(model('lm.onnx'));
    windows = readNpy(readFileSync(model('lm-eval.npy')));
    base = (await lmPerplexity(bytes, windows)).perplexity;
  });

  const budget: Partial<Record<SchemeName, number>> = { int8: 0.005, q4: 0.03, nf4: 0.03, fp4: 0.06, fp16: 0.001 };
  for (const scheme of ALL) {
    const b = budget[scheme];
    it(
      b !== undefined
        ? `${scheme}${scheme === 'q4' ? ' block 32' : ''}: perplexity ≤ +${b * 100} % of fp32`
        : `${scheme}: runs in ORT, perplexity ≤ +10 %`,
      async () => {
        const q = quantizeModelBytes(bytes, { scheme });
        const p = (await lmPerplexity(q.bytes, windows)).perplexity;
        expect(p / base - 1).toBeLessThanOrEqual(b ?? 0.1);
      },
    );
  }

  it('q4 block 32 with the per-block search beats plain round-to-nearest (--rtn)', async () => {
    const search = (await lmPerplexity(quantizeModelBytes(bytes, { scheme: 'q4' }).bytes, windows)).perplexity;
    const rtn = (await lmPerplexity(quantizeModelBytes(bytes, { scheme: 'q4', rtn: true }).bytes, windows)).perplexity;
    expect(search).toBeLessThan(rtn);
  });
});

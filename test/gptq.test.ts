import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytesGptq } from '../src/flows/gptq.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { readNpy } from '../src/io/npy/npy.js';
import type { SchemeName } from '../src/passes/weight-only/index.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { runCli } from './helpers/cli.js';

/*
 * GPTQ (--calib with a 4-bit weight-only scheme) on the project's char LM and on the Gemm/tied
 * variant: calibrated on the training windows, evaluated on the held-out ones in onnxruntime-node,
 * against the same scheme without calibration data. Budgets are the issues' (perplexity vs fp32).
 */

const path = (p: string) => new URL(p, import.meta.url).pathname;
const npy = (p: string): Tensor => readNpy(readFileSync(p));
const pct = (x: number) => `${(x * 100).toFixed(2)} %`;

const BUDGET: Partial<Record<SchemeName, number>> = { q4: 0.03, nf4: 0.03, fp4: 0.06 };

const MODELS = [
  {
    name: 'models/lm.onnx',
    model: path('../models/lm.onnx'),
    calib: path('../models/lm-calib.npy'),
    eval: path('../models/lm-eval.npy'),
  },
  {
    name: 'lm-gemm-tied.onnx',
    model: path('fixtures/variants/lm-gemm-tied.onnx'),
    calib: path('fixtures/variants/lm-gemm-tied-calib.npy'),
    eval: path('fixtures/variants/lm-gemm-tied-eval.npy'),
  },
];

for (const m of MODELS) {
  describe(`GPTQ on ${m.name}`, () => {
    let bytes: Uint8Array;
    let windows: Tensor;
    let calib: Map<string, Tensor>;
    let base = 0;
    beforeAll(async () => {
      bytes = readFileSync(m.model);
      windows = npy(m.eval);
      calib = new Map([['input_ids', npy(m.calib)]]);
      base = (await lmPerplexity(bytes, windows)).perplexity;
    });

    for (const [scheme, budget] of Object.entries(BUDGET) as [SchemeName, number][]) {
      it(`${scheme}${scheme === 'q4' ? ' block 32' : ''} with --calib: perplexity ≤ +${budget * 100} % of fp32 and below the data-free result`, async () => {
        const dataFree = (await lmPerplexity(quantizeModelBytes(bytes, { scheme }).bytes, windows)).perplexity;
        const q = await quantizeModelBytesGptq(bytes, { scheme }, calib);
        // Every projection went through GPTQ, and the report says so.
        expect(q.report.totals.quantizedLayers).toBe(13);
        for (const l of q.report.layers) if (l.scheme !== 'fp32') expect(l.form).toMatch(/ gptq$/);
        expect(q.report.notes.join(' ')).toMatch(/GPTQ on 13 weight\(s\)/);
        const p = (await lmPerplexity(q.bytes, windows)).perplexity;
        console.log(
          `${m.name} ${scheme}: fp32 ${base.toFixed(4)}, data-free ${dataFree.toFixed(4)} (${pct(dataFree / base - 1)}), GPTQ ${p.toFixed(4)} (${pct(p / base - 1)})`,
        );
        expect(p / base - 1).toBeLessThanOrEqual(budget);
        expect(p).toBeLessThan(dataFree);
      });
    }
  });
}

describe('quantkit quantize --calib (GPTQ)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-gptq-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const model = path('fixtures/variants/lm-gemm-tied.onnx');
  const calib = path('fixtures/variants/lm-gemm-tied-calib.npy');

  it('q4-asym --calib writes a MatMulNBits model with gptq in the form column; it runs in ORT within budget', async () => {
    const out = join(dir, 'q4a.onnx');
    const r = runCli(['quantize', model, '-o', out, '--scheme', 'q4-asym', '--calib', `input_ids=${calib}`, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { layers: { form: string }[]; notes: string[] };
    expect(report.layers.map((l) => l.form)).toContain('MatMulNBits(bits=4, block=32, zero points) gptq');
    expect(report.notes.some((n) => n.startsWith('GPTQ on 13 weight(s) from 1024 calibration tokens'))).toBe(true);
    const windows = npy(path('fixtures/variants/lm-gemm-tied-eval.npy'));
    const base = (await lmPerplexity(readFileSync(model), windows)).perplexity;
    const p = (await lmPerplexity(readFileSync(out), windows)).perplexity;
    expect(p / base - 1).toBeLessThanOrEqual(0.03);
  });

  it('--calib with a scheme GPTQ does not cover is a user error naming the way out', () => {
    const r = runCli(['quantize', model, '-o', join(dir, 'x.onnx'), '--scheme', 'fp16', '--calib', calib]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('QK_BAD_OPTION');
    expect(r.stderr).toContain('q4');
  });
});

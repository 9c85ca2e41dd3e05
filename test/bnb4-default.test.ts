import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifierAccuracy, lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { readNpy } from '../src/io/npy/npy.js';
import type { Tensor } from '../src/tensor/tensor.js';

/*
 * The data-free nf4/fp4 default against plain absmax (--rtn, bitsandbytes' choice), in ONNX
 * Runtime, on every LM and CNN the project ships or keeps as a variant: the default must never be
 * worse in perplexity or accuracy (no tolerance). The per-block constant search is the default
 * only where it pays off in model output (bnb4-handler.ts dataFreeSearch): for fp4 it must lower
 * perplexity on each LM, or it has no business being the default.
 */

const at = (p: string) => new URL(`../${p}`, import.meta.url).pathname;
const npy = (p: string): Tensor => readNpy(readFileSync(at(p)));

const LMS = [
  { file: 'models/lm.onnx', eval: 'models/lm-eval.npy' },
  { file: 'test/fixtures/variants/lm-gemm-tied.onnx', eval: 'test/fixtures/variants/lm-gemm-tied-eval.npy' },
  { file: 'test/fixtures/variants/lm-constants.onnx', eval: 'models/lm-eval.npy' },
];
const CNNS = ['models/cnn.onnx', 'test/fixtures/variants/cnn-residual.onnx', 'test/fixtures/variants/cnn-opset11.onnx'];

describe('nf4 / fp4 data-free default vs absmax (--rtn)', () => {
  for (const m of LMS) {
    it(`${m.file}: nf4 perplexity ≤ absmax's; fp4's search < absmax's`, async () => {
      const bytes = readFileSync(at(m.file));
      const windows = npy(m.eval);
      const ppl = async (scheme: 'nf4' | 'fp4', rtn: boolean) =>
        (await lmPerplexity(quantizeModelBytes(bytes, { scheme, rtn }).bytes, windows)).perplexity;
      const nf4 = await ppl('nf4', false);
      const nf4Absmax = await ppl('nf4', true);
      const fp4 = await ppl('fp4', false);
      const fp4Absmax = await ppl('fp4', true);
      console.log(
        `${m.file}: nf4 ${nf4.toFixed(4)} (absmax ${nf4Absmax.toFixed(4)}), fp4 ${fp4.toFixed(4)} (absmax ${fp4Absmax.toFixed(4)})`,
      );
      expect(nf4).toBeLessThanOrEqual(nf4Absmax);
      expect(fp4).toBeLessThan(fp4Absmax);
    });
  }
  const x = npy('models/cnn-test-x.npy');
  const y = npy('models/cnn-test-y.npy');
  for (const file of CNNS) {
    it(`${file}: nf4 and fp4 accuracy ≥ absmax's`, async () => {
      const bytes = readFileSync(at(file));
      for (const scheme of ['nf4', 'fp4'] as const) {
        const acc = async (rtn: boolean) =>
          (await classifierAccuracy(quantizeModelBytes(bytes, { scheme, rtn }).bytes, x, y)).accuracy;
        const def = await acc(false);
        const absmax = await acc(true);
        console.log(`${file} ${scheme}: accuracy ${def} (absmax ${absmax})`);
        expect(def).toBeGreaterThanOrEqual(absmax);
      }
    });
  }
});

// Weight-only quality on every shipped and variant model, per scheme, default vs --rtn:
// perplexity (LMs) or accuracy (CNNs) in ONNX Runtime. `npx tsx scripts/measure/weight-only-quality.ts [scheme …]`
import { readFileSync } from 'node:fs';
import { classifierAccuracy, lmPerplexity } from '../../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { readNpy } from '../../src/io/npy/npy.js';
import type { SchemeName } from '../../src/passes/weight-only/index.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));
const LMS = [
  { name: 'lm.onnx', file: 'models/lm.onnx', eval: 'models/lm-eval.npy' },
  {
    name: 'lm-gemm-tied',
    file: 'test/fixtures/variants/lm-gemm-tied.onnx',
    eval: 'test/fixtures/variants/lm-gemm-tied-eval.npy',
  },
  { name: 'lm-constants', file: 'test/fixtures/variants/lm-constants.onnx', eval: 'models/lm-eval.npy' },
];
const CNNS = [
  { name: 'cnn.onnx', file: 'models/cnn.onnx' },
  { name: 'cnn-residual', file: 'test/fixtures/variants/cnn-residual.onnx' },
  { name: 'cnn-opset11', file: 'test/fixtures/variants/cnn-opset11.onnx' },
];
const schemes = (process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['q4', 'nf4', 'fp4']) as SchemeName[];
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)} %`;
for (const m of LMS) {
  const bytes = readFileSync(root + m.file);
  const w = npy(m.eval);
  const base = (await lmPerplexity(bytes, w)).perplexity;
  for (const scheme of schemes) {
    const row: string[] = [];
    for (const rtn of [false, true]) {
      const p = (await lmPerplexity(quantizeModelBytes(bytes, { scheme, rtn }).bytes, w)).perplexity;
      row.push(`${rtn ? 'rtn' : 'default'} ${p.toFixed(4)} (${pct(p / base - 1)})`);
    }
    console.log(`| ${m.name} | ${scheme} | ${row.join(' | ')} |`);
  }
}
const x = npy('models/cnn-test-x.npy');
const y = npy('models/cnn-test-y.npy');
for (const m of CNNS) {
  const bytes = readFileSync(root + m.file);
  const base = await classifierAccuracy(bytes, x, y);
  for (const scheme of schemes) {
    const row: string[] = [];
    for (const rtn of [false, true]) {
      const r = await classifierAccuracy(quantizeModelBytes(bytes, { scheme, rtn }).bytes, x, y, base.logits);
      row.push(
        `${rtn ? 'rtn' : 'default'} ${(r.accuracy * 100).toFixed(2)} % |Δlogit| ${r.meanAbsLogitDiff?.toFixed(4)}`,
      );
    }
    console.log(`| ${m.name} (fp32 ${(base.accuracy * 100).toFixed(2)} %) | ${scheme} | ${row.join(' | ')} |`);
  }
}

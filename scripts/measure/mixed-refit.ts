// The mixed plans of scripts/measure/low-bit-table.ts (default candidates, AWQ-scaled base, one
// refinement round, at 3.5 / 4.25 / 5 bits) written both ways — assembled from the candidates'
// whole-model GPTQ runs, and refitted by one sequential GPTQ pass over the plan (flows/mixed.ts
// refitModel) — each scored by its mean KL from fp32 on many windows GPTQ was not fitted on and by
// its perplexity change on the evaluation windows.
//
//   /usr/bin/python3 scripts/models/make_calib_windows.py --windows 512
//   npx tsx scripts/measure/mixed-refit.ts [lm-gemm-tied] [lm]   (env: WINDOWS=512)
//
// The scoring windows are the training text's (make_calib_windows.py, seed 31): unseen by GPTQ
// and the plan's choice, which use the committed calibration windows.
import { readFileSync } from 'node:fs';
import { lmPerplexity } from '../../src/flows/evaluate-node.js';
import { nodeMixedHooks } from '../../src/flows/mixed-file.js';
import {
  AWQ_CANDIDATES,
  DEFAULT_CANDIDATES,
  klFromReference,
  measureSensitivity,
  mixedModelBytes,
  parseCandidate,
  prepareMixed,
  referenceOutputs,
  refinePlan,
  refitModel,
} from '../../src/flows/mixed.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { nodeRuntime } from '../../src/node/ort-runtime.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));
const windows = process.env['WINDOWS'] ?? '512';
const LMS: Record<string, { file: string; eval: string; calib: string; scoring: string }> = {
  'lm-gemm-tied': {
    file: 'test/fixtures/variants/lm-gemm-tied.onnx',
    eval: 'test/fixtures/variants/lm-gemm-tied-eval.npy',
    calib: 'test/fixtures/variants/lm-gemm-tied-calib.npy',
    scoring: `.cache/calib/lm-gemm-tied-calib-${windows}.npy`,
  },
  lm: {
    file: 'models/lm.onnx',
    eval: 'models/lm-eval.npy',
    calib: 'models/lm-calib.npy',
    scoring: `.cache/calib/lm-calib-${windows}.npy`,
  },
};
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['lm-gemm-tied', 'lm'];
for (const name of names) {
  const m = LMS[name];
  if (!m) throw new Error(`unknown LM ${name}`);
  const bytes = readFileSync(root + m.file);
  const evalWindows = npy(m.eval);
  const calib = new Map([['input_ids', npy(m.calib)]]);
  const scoring = new Map([['input_ids', npy(m.scoring)]]);
  const cands = [...DEFAULT_CANDIDATES, ...AWQ_CANDIDATES].map(parseCandidate);
  const setup = await prepareMixed(bytes, cands, {}, nodeMixedHooks(calib, { awq: true }));
  const s = await measureSensitivity(nodeRuntime, bytes, calib, cands, {}, undefined, setup);
  const params = s.weights.reduce((a, w) => a + w.params, 0);
  const ref = await referenceOutputs(nodeRuntime, bytes, scoring);
  const base = (await lmPerplexity(bytes, evalWindows)).perplexity;
  console.log(`\n${name}: KL from fp32 on ${windows} unseen windows, perplexity change on the evaluation windows`);
  console.log('| LM | bits | assembled KL | refitted KL | assembled perplexity | refitted perplexity | refit time |');
  console.log('|---|---|---|---|---|---|---|');
  for (const target of [3.5, 4.25, 5]) {
    const plan = await refinePlan(nodeRuntime, bytes, calib, cands, setup, s, (target * params) / 8, { rounds: 1 });
    const t0 = performance.now();
    const refitted = await refitModel(setup, plan.choice);
    const seconds = (performance.now() - t0) / 1000;
    const cells: string[] = [];
    const ppls: string[] = [];
    for (const q of [mixedModelBytes(setup, plan), refitted]) {
      cells.push((await klFromReference(nodeRuntime, q.bytes, scoring, ref)).toExponential(3));
      const change = (await lmPerplexity(q.bytes, evalWindows)).perplexity / base - 1;
      ppls.push(`${change >= 0 ? '+' : ''}${(change * 100).toFixed(2)} %`);
    }
    console.log(`| ${name} | ${target} | ${cells.join(' | ')} | ${ppls.join(' | ')} | ${seconds.toFixed(1)} s |`);
  }
}

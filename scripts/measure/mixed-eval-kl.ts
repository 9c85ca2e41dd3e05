// KL from fp32 and perplexity change on an LM's evaluation windows, for a kept mixed model and the
// single-scheme models it is compared with: whether the model closest to fp32 is also the one whose
// perplexity rises least (README "Mixed precision against every single-scheme row").
//
//   npx tsx scripts/measure/mixed-eval-kl.ts <lm.onnx> <eval.npy> <calib.npy> <mixed.onnx> scheme:block:gptq|awq ... (awq: AWQ+GPTQ)
//   e.g. … test/fixtures/variants/lm-gemm-tied.onnx test/fixtures/variants/lm-gemm-tied-eval.npy
//        .cache/calib/lm-gemm-tied-calib-128.npy .cache/mixed-lm-gemm-tied-5-c128.onnx q4-k:32:gptq q4:32:awq
import { readFileSync } from 'node:fs';
import { quantizeModelBytesGptq } from '../../src/flows/gptq.js';
import { quantizeModelBytesAwq } from '../../src/flows/awq-node.js';
import { klFromReference, referenceOutputs } from '../../src/flows/mixed.js';
import { lmPerplexity } from '../../src/flows/evaluate-node.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { nodeRuntime } from '../../src/node/ort-runtime.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import type { SchemeName } from '../../src/passes/weight-only/scheme.js';
const root = new URL('../../', import.meta.url).pathname;
const [file, evalPath, calibPath, mixedPath] = process.argv.slice(2) as [string, string, string, string];
const bytes = readFileSync(root + file);
const ev = readNpy(readFileSync(root + evalPath));
const [n, len] = ev.dims as [number, number];
const ids = ev.data as BigInt64Array;
// The model reads the first 64 ids of each 65-id window, as the perplexity does.
const x = new BigInt64Array(n * (len - 1));
for (let i = 0; i < n; i++) x.set(ids.subarray(i * len, i * len + len - 1), i * (len - 1));
const data = new Map([['input_ids', makeTensor('int64', [n, len - 1], x)]]);
const calib = new Map([['input_ids', readNpy(readFileSync(root + calibPath))]]);
const ref = await referenceOutputs(nodeRuntime, bytes, data);
const base = (await lmPerplexity(bytes, ev)).perplexity;
const show = async (label: string, q: Uint8Array) => {
  const kl = await klFromReference(nodeRuntime, q, data, ref);
  const p = (await lmPerplexity(q, ev)).perplexity;
  console.log(`${label}: eval KL ${kl.toExponential(3)}, perplexity ${((p / base - 1) * 100).toFixed(2)} %`);
};
await show('mixed', readFileSync(root + mixedPath));
for (const spec of process.argv.slice(6)) {
  const [scheme, block, method] = spec.split(':') as [string, string, string];
  const o = { scheme: scheme as SchemeName, blockSize: Number(block) };
  const q =
    method === 'awq'
      ? await quantizeModelBytesAwq(bytes, o, calib, { gptq: true })
      : await quantizeModelBytesGptq(bytes, o, calib);
  await show(spec, q.bytes);
}

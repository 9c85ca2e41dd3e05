// k-means weight sharing vs int4 absmax per channel, both data-free, on the shipped models and
// their variants: accuracy (CNNs) or perplexity (LMs) in ONNX Runtime, and weight bytes.
// `npx tsx scripts/measure/kmeans-vs-int4.ts`
import { readFileSync } from 'node:fs';
import { classifierAccuracy, lmPerplexity } from '../../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { modelFromProto } from '../../src/graph/from-onnx.js';
import { memoryInitializer } from '../../src/graph/model.js';
import { modelToProto } from '../../src/graph/to-onnx.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../../src/io/onnx/proto.js';
import { foldBatchNorm } from '../../src/passes/fold-batchnorm.js';
import { outputChannelAxis, rejectStorage } from '../../src/passes/weight-only/dq-storage.js';
import { findWeightSites, totalInitializerBytes } from '../../src/passes/weight-only/index.js';
import { dequantize, quantize } from '../../src/quant/quantize.js';
import { makeTensor } from '../../src/tensor/tensor.js';

const root = new URL('../../', import.meta.url).pathname;
const npy = (p: string) => readNpy(readFileSync(root + p));

/** Every weight the kmeans scheme takes, replaced by int4 symmetric absmax per output channel (fp32 in the file). */
function int4PerChannel(bytes: Uint8Array): { bytes: Uint8Array; weightBytes: number } {
  const model = modelFromProto(decodeModel(bytes, 'in'), { label: 'in' });
  foldBatchNorm(model);
  const before = totalInitializerBytes(model);
  let saved = 0;
  const seen = new Set<string>();
  for (const site of findWeightSites(model)) {
    const init = site.weight;
    if (seen.has(init.name) || rejectStorage(site)) continue;
    seen.add(init.name);
    const axis = outputChannelAxis(site);
    const data = init.load().data as Float32Array;
    const q = quantize(data, { format: 'int4', shape: init.dims, axis, name: init.name });
    const back = dequantize(q);
    model.graph.initializers.set(init.name, memoryInitializer(init.name, makeTensor('float32', [...init.dims], back)));
    saved += 4 * data.length - (Math.ceil(data.length / 2) + 4 * (init.dims[axis] as number));
  }
  return { bytes: encodeModel(modelToProto(model)), weightBytes: before - saved };
}

const variants = [
  { label: 'kmeans 4-bit per tensor', run: (b: Uint8Array) => quantizeModelBytes(b, { scheme: 'kmeans', bits: 4 }) },
  {
    label: 'kmeans 4-bit per channel',
    run: (b: Uint8Array) => quantizeModelBytes(b, { scheme: 'kmeans', bits: 4, perChannel: true }),
  },
  { label: 'kmeans 3-bit per tensor', run: (b: Uint8Array) => quantizeModelBytes(b, { scheme: 'kmeans', bits: 3 }) },
  {
    label: 'int4 absmax per channel',
    run: (b: Uint8Array) => {
      const r = int4PerChannel(b);
      return { bytes: r.bytes, report: { totals: { bytesAfter: r.weightBytes } } };
    },
  },
  { label: 'q4 block 32 (MatMulNBits)', run: (b: Uint8Array) => quantizeModelBytes(b, { scheme: 'q4' }) },
];

const LMS = [
  ['lm.onnx', 'models/lm.onnx', 'models/lm-eval.npy'],
  ['lm-gemm-tied', 'test/fixtures/variants/lm-gemm-tied.onnx', 'test/fixtures/variants/lm-gemm-tied-eval.npy'],
] as const;
const CNNS = [
  ['cnn.onnx', 'models/cnn.onnx'],
  ['cnn-residual', 'test/fixtures/variants/cnn-residual.onnx'],
] as const;

console.log('| model | variant | quality | Δ vs fp32 | weight bytes |');
console.log('|---|---|---|---|---|');
for (const [name, file, evalFile] of LMS) {
  const bytes = readFileSync(root + file);
  const w = npy(evalFile);
  const base = (await lmPerplexity(bytes, w)).perplexity;
  const fp32 = totalInitializerBytes(modelFromProto(decodeModel(bytes, name), { label: name }));
  console.log(`| ${name} | fp32 | ppl ${base.toFixed(4)} | | ${fp32} |`);
  for (const v of variants) {
    const q = v.run(bytes);
    const p = (await lmPerplexity(q.bytes, w)).perplexity;
    console.log(
      `| ${name} | ${v.label} | ppl ${p.toFixed(4)} | ${((p / base - 1) * 100).toFixed(2)} % | ${q.report.totals.bytesAfter} |`,
    );
  }
}
const x = npy('models/cnn-test-x.npy');
const y = npy('models/cnn-test-y.npy');
for (const [name, file] of CNNS) {
  const bytes = readFileSync(root + file);
  const base = (await classifierAccuracy(bytes, x, y)).accuracy;
  const fp32 = totalInitializerBytes(modelFromProto(decodeModel(bytes, name), { label: name }));
  console.log(`| ${name} | fp32 | acc ${(base * 100).toFixed(2)} % | | ${fp32} |`);
  for (const v of variants) {
    const q = v.run(bytes);
    const a = (await classifierAccuracy(q.bytes, x, y)).accuracy;
    console.log(
      `| ${name} | ${v.label} | acc ${(a * 100).toFixed(2)} % | ${((a - base) * 100).toFixed(2)} pt | ${q.report.totals.bytesAfter} |`,
    );
  }
}

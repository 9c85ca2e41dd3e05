// ORT latency of a few quantized forms of an LM against fp32, interleaved in one run (16 × 64
// tokens per batch, median of `runs` after a warm-up; 2 intra-op threads). On a shared machine
// only the ratios mean anything.
//   [EXTRA=a.onnx,b.onnx] [BATCH=16 TOKENS=64] npx tsx scripts/measure/low-bit-latency.ts [model.onnx eval.npy calib.npy] [runs]
import { readFileSync } from 'node:fs';
import { quantizeModelBytesAwq } from '../../src/flows/awq-node.js';
import { openSession } from '../../src/flows/evaluate-node.js';
import { quantizeModelBytesGptq } from '../../src/flows/gptq.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { nodeRuntime } from '../../src/node/ort-runtime.js';

const root = new URL('../../', import.meta.url).pathname;
const [file = 'models/lm.onnx', evalF = 'models/lm-eval.npy', calibF = 'models/lm-calib.npy', runsArg = '20'] =
  process.argv.slice(2);
const bytes = readFileSync(root + file);
const windows = readNpy(readFileSync(root + evalF));
const calib = new Map([['input_ids', readNpy(readFileSync(root + calibF))]]);
const forms: [string, Uint8Array][] = [
  ['fp32', bytes],
  ['q4 g32', quantizeModelBytes(bytes, { scheme: 'q4' }).bytes],
  ['q4 g32 accuracy_level 4', quantizeModelBytes(bytes, { scheme: 'q4', accuracyLevel: 4 }).bytes],
  ['q2-asym g32', quantizeModelBytes(bytes, { scheme: 'q2-asym' }).bytes],
  ['q4 g128 hqq', quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128, hqq: true }).bytes],
  [
    'q4 g128 hqq, float zero points inline',
    quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128, hqq: true, floatZeroPoints: 'inline' }).bytes,
  ],
  ['q4 g128 gptq', (await quantizeModelBytesGptq(bytes, { scheme: 'q4', blockSize: 128 }, calib)).bytes],
  [
    'q4 g128 awq+gptq',
    (await quantizeModelBytesAwq(bytes, { scheme: 'q4', blockSize: 128 }, calib, { gptq: true })).bytes,
  ],
  ['q4-k g32 gptq', (await quantizeModelBytesGptq(bytes, { scheme: 'q4-k', blockSize: 32 }, calib)).bytes],
  [
    'q4-k g32 gptq, float zero points inline',
    (await quantizeModelBytesGptq(bytes, { scheme: 'q4-k', blockSize: 32, floatZeroPoints: 'inline' }, calib)).bytes,
  ],
  ['q2-asym g32 accuracy_level 4', quantizeModelBytes(bytes, { scheme: 'q2-asym', accuracyLevel: 4 }).bytes],
  ['q3-spqr g32 gptq', (await quantizeModelBytesGptq(bytes, { scheme: 'q3-spqr', blockSize: 32 }, calib)).bytes],
  [
    'q3-asym g16 + 0.5 % outliers',
    quantizeModelBytes(bytes, { scheme: 'q3-asym', blockSize: 16, outliers: 0.005 }).bytes,
  ],
];
// More forms from files, e.g. the mixed models low-bit-table.ts keeps: EXTRA=.cache/mixed-lm-5.onnx
for (const f of process.env['EXTRA']?.split(',') ?? []) forms.push([f, readFileSync(root + f)]);
const [count, len] = windows.dims as [number, number];
// BATCH=b TOKENS=t: b sequences of t tokens per run instead of 16 × 64 (BATCH=1 TOKENS=1: one token).
const b = Math.min(Number(process.env['BATCH'] ?? 16), count);
const T = Math.min(Number(process.env['TOKENS'] ?? len - 1), len - 1);
const ids = windows.data as BigInt64Array;
const input = new BigInt64Array(b * T);
for (let i = 0; i < b; i++) input.set(ids.subarray(i * len, i * len + T), i * T);
const sessions = await Promise.all(forms.map(([, m]) => openSession(m)));
const feeds = (i: number) => ({ [sessions[i]!.inputNames[0] as string]: nodeRuntime.tensor('int64', input, [b, T]) });
const times = forms.map(() => [] as number[]);
for (let i = 0; i < forms.length; i++) await sessions[i]!.run(feeds(i));
for (let r = 0; r < Number(runsArg); r++) {
  for (let i = 0; i < forms.length; i++) {
    const t0 = performance.now();
    await sessions[i]!.run(feeds(i));
    times[i]!.push(performance.now() - t0);
  }
}
const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)] as number;
const base = median(times[0]!);
for (const [i, [name]] of forms.entries())
  console.log(`| ${name} | ${median(times[i]!).toFixed(1)} ms | ${(median(times[i]!) / base).toFixed(2)}× |`);

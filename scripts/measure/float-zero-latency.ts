// ORT latency of 4-bit float zero points written apart (the default) against inline
// (`floatZeroPoints` 'inline') and fp32, interleaved in one run (median of `runs`; 2 intra-op
// threads), at one token and at 16 × 64. The data-free q4-k has the graph of q4-k by GPTQ.
//   npx tsx scripts/measure/float-zero-latency.ts [model.onnx eval.npy] [runs]
import { readFileSync } from 'node:fs';
import { openSession } from '../../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../../src/flows/quantize.js';
import { readNpy } from '../../src/io/npy/npy.js';
import { nodeRuntime } from '../../src/node/ort-runtime.js';

const root = new URL('../../', import.meta.url).pathname;
const [file = 'models/lm.onnx', evalF = 'models/lm-eval.npy', runsArg = '40'] = process.argv.slice(2);
const bytes = readFileSync(root + file);
const windows = readNpy(readFileSync(root + evalF));
const forms: [string, Uint8Array][] = [
  ['fp32', bytes],
  ['q4 g128 hqq', quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128, hqq: true }).bytes],
  [
    'q4 g128 hqq inline',
    quantizeModelBytes(bytes, { scheme: 'q4', blockSize: 128, hqq: true, floatZeroPoints: 'inline' }).bytes,
  ],
  ['q4-k g32', quantizeModelBytes(bytes, { scheme: 'q4-k', blockSize: 32 }).bytes],
  ['q4-k g32 inline', quantizeModelBytes(bytes, { scheme: 'q4-k', blockSize: 32, floatZeroPoints: 'inline' }).bytes],
];
const sessions = await Promise.all(forms.map(([, m]) => openSession(m)));
const [count, len] = windows.dims as [number, number];
const ids = windows.data as BigInt64Array;
const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)] as number;
for (const [b0, t0] of [
  [1, 1],
  [16, len - 1],
] as const) {
  const b = Math.min(b0, count);
  const T = Math.min(t0, len - 1);
  const input = new BigInt64Array(b * T);
  for (let i = 0; i < b; i++) input.set(ids.subarray(i * len, i * len + T), i * T);
  const feeds = (i: number) => ({ [sessions[i]!.inputNames[0] as string]: nodeRuntime.tensor('int64', input, [b, T]) });
  const times = forms.map(() => [] as number[]);
  for (let i = 0; i < forms.length; i++) await sessions[i]!.run(feeds(i));
  const runs = b * T === 1 ? 10 * Number(runsArg) : Number(runsArg);
  for (let r = 0; r < runs; r++)
    for (let i = 0; i < forms.length; i++) {
      const start = performance.now();
      await sessions[i]!.run(feeds(i));
      times[i]!.push(performance.now() - start);
    }
  const base = median(times[0]!);
  console.log(`${file}, ${b} × ${T} tokens, median of ${runs}`);
  for (const [i, [name]] of forms.entries())
    console.log(`| ${name} | ${median(times[i]!).toFixed(2)} ms | ${(median(times[i]!) / base).toFixed(2)}× |`);
}

// `quantkit bench` inside `npm run bench`: our int8 / 4-bit kernels beside onnxruntime-node and
// onnxruntime-web, and ORT latency of our quantized models vs fp32 (src/flows/bench-node.ts).
// ratio = their time / ours (above 1: ours is faster). QK_BENCH_QUICK=1 runs the small subset.
import { fileURLToPath } from 'node:url';
import { runBench } from '../src/flows/bench-node.js';
import type { BenchResult } from './run.js';

export async function run(): Promise<BenchResult[]> {
  const report = await runBench({ quick: process.env['QK_BENCH_QUICK'] === '1' });
  return report.rows.map((row) => ({
    name: row.key,
    ratio: row.ratio,
    detail: `${row.label}: ours ${row.oursMs.toPrecision(3)} ms, theirs ${row.theirsMs.toPrecision(3)} ms${
      row.rate ? ` (${row.rate.ours.toPrecision(3)} vs ${row.rate.theirs.toPrecision(3)} ${row.rate.unit})` : ''
    }`,
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await run()) console.log(`${r.name}: ${r.ratio.toFixed(2)}× — ${r.detail}`);
}

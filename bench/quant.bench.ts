// quantize throughput against a memcpy of the same bytes, measured in the same run.
import { quantize } from '../src/quant/index.js';

function normal(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * 0.02;
  return out;
}

/** Best of `reps` wall-clock timings, in ms. */
function best(reps: number, fn: () => void): number {
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

export async function run(): Promise<{ name: string; ratio: number; detail: string }[]> {
  const rows = 4096;
  const cols = 4096;
  const data = normal(rows * cols, 1);
  const bytes = data.byteLength;
  const mb = bytes / 1e6;
  const copy = new Float32Array(data.length);
  const memcpyMs = best(5, () => copy.set(data));
  const results: { name: string; ratio: number; detail: string }[] = [];
  const cases = [
    {
      name: 'quantize fp32→int8 per-channel 4096×4096',
      spec: { format: 'int8' as const, shape: [rows, cols], axis: 0 },
    },
    { name: 'quantize fp32→nf4 block 64 4096×4096', spec: { format: 'nf4' as const, blockSize: 64 } },
  ];
  for (const c of cases) {
    quantize(data, c.spec); // warm-up (JIT)
    const ms = best(3, () => quantize(data, c.spec));
    results.push({
      name: c.name,
      ratio: ms / memcpyMs,
      detail: `${(mb / (ms / 1000)).toFixed(0)} MB/s vs memcpy ${(mb / (memcpyMs / 1000)).toFixed(0)} MB/s (${ms.toFixed(1)} ms vs ${memcpyMs.toFixed(1)} ms; ratio = time / memcpy time)`,
    });
  }
  return results;
}

// `tsx bench/quant.bench.ts` runs it directly.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run()) console.log(`${r.name}: ${r.ratio.toFixed(1)}× memcpy — ${r.detail}`);
}

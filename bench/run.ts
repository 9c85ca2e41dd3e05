// `npm run bench`: every bench/*.bench.ts exports run(), which measures its subject beside a
// baseline in the same process and returns ratios. Timings never live in unit tests.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchResult {
  name: string;
  ratio: number;
  detail: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts') && (only.length === 0 || only.some((o) => f.includes(o))))
  .sort();
const all: (BenchResult & { file: string })[] = [];
for (const file of files) {
  process.stderr.write(`bench ${file} ...\n`);
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { run: () => Promise<BenchResult[]> };
  for (const r of await mod.run()) {
    all.push({ ...r, file });
    process.stdout.write(`${r.name.padEnd(52)} ${r.ratio.toFixed(2).padStart(8)}×  ${r.detail}\n`);
  }
}
if (process.env.QK_BENCH_JSON) process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);

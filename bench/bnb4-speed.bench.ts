// nf4 / fp4 weight-only quantization time against q4's on the same model: a 3 × 4096² fp32 MatMul
// stack (201 MB of weights, external data) generated on the fly, each scheme run file to file in
// this process (quantizeFile, worker threads as the CLI uses them), best of RUNS. Target ≤ 2×.
// QK_BENCH_BNB4_BASELINE=1 also times nf4 / fp4 as they ran before the WebAssembly search and the
// worker pool took them (JS search, main thread; one run: fp4 takes ~30 s), for a before/after
// from one process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantizeFile } from '../src/flows/quantize-file.js';
import { enableBnb4SearchWasm } from '../src/kernels/bnb4-search.js';
import { writeMatMulStack } from '../test/helpers/matmul-stack.js';

const RUNS = 2;

export async function run(): Promise<{ name: string; ratio: number; detail: string }[]> {
  const dir = mkdtempSync(join(tmpdir(), 'qk-bnb4-bench-'));
  try {
    const input = await writeMatMulStack(dir, { layers: 3, side: 4096, fill: 'normal' });
    const time = async (scheme: 'q4' | 'nf4' | 'fp4', runs = RUNS, baseline = false) => {
      let b = Infinity;
      enableBnb4SearchWasm(!baseline);
      try {
        for (let i = 0; i < runs; i++) {
          const t = performance.now();
          await quantizeFile(input, join(dir, `${scheme}.onnx`), {
            scheme,
            force: true,
            ...(baseline ? { pool: { threads: 1 } } : {}),
          });
          b = Math.min(b, performance.now() - t);
        }
      } finally {
        enableBnb4SearchWasm(true);
      }
      return b / 1000;
    };
    const q4 = await time('q4');
    const rows = [];
    for (const scheme of ['nf4', 'fp4'] as const) {
      const s = await time(scheme);
      rows.push({
        name: `quantize ${scheme} 3×4096² (201 MB): time / q4's (target ≤ 2)`,
        ratio: s / q4,
        detail: `${scheme} ${s.toFixed(2)} s, q4 ${q4.toFixed(2)} s, best of ${RUNS}, file to file`,
      });
    }
    if (process.env.QK_BENCH_BNB4_BASELINE) {
      for (const scheme of ['nf4', 'fp4'] as const) {
        const s = await time(scheme, 1, true);
        rows.push({
          name: `  before: ${scheme}, JS search on the main thread / q4's`,
          ratio: s / q4,
          detail: `${scheme} ${s.toFixed(2)} s, one run`,
        });
      }
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const row of await run()) console.log(`${row.name}: ${row.ratio.toFixed(2)} (${row.detail})`);
}

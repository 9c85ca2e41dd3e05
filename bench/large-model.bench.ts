// A model with more weights than protobuf's 2 GiB allows, generated on the fly (streamed: one
// tensor in memory at a time), then `convert` (external → external relocation) and `inspect` each
// run in a child process whose peak RSS is reported as a ratio to the weight bytes. The streaming
// rows skip the check after the write (--no-verify): that check is ONNX Runtime holding the whole
// model, measured in its own row (a convert with the check on, the default).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeMatMulStack } from '../test/helpers/matmul-stack.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SIDE = 4096; // 4096 x 4096 fp32 = 64 MiB per weight

/** Writes `dir/model.onnx` + `model.onnx.data` with at least `weightBytes` of fp32 weights. */
export async function generateLargeModel(
  dir: string,
  weightBytes: number,
  side = SIDE,
): Promise<{ path: string; weightBytes: number }> {
  const perTensor = side * side * 4;
  const layers = Math.ceil(weightBytes / perTensor);
  const path = await writeMatMulStack(dir, { layers, side, fill: 'sparse' });
  return { path, weightBytes: layers * perTensor };
}

export interface ChildReport {
  job: string;
  peakRss: number;
}

export function runChild(args: string[]): ChildReport {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'large-model.child.ts'), ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`child ${args[0]} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as ChildReport;
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

export async function run(): Promise<{ name: string; ratio: number; detail: string }[]> {
  const weights = 2.2e9;
  const root = tmpdir();
  // Source + two relocated copies, with headroom.
  if (freeBytes(root) < 3.5 * weights) {
    return [
      {
        name: 'large model (> 2 GB)',
        ratio: NaN,
        detail: `skipped: ${(freeBytes(root) / 1e9).toFixed(1)} GB free in ${root}, needs ${((3.5 * weights) / 1e9).toFixed(1)}`,
      },
    ];
  }
  const dir = mkdtempSync(join(root, 'qk-large-'));
  try {
    const t0 = performance.now();
    const { path, weightBytes } = await generateLargeModel(dir, weights);
    const genS = (performance.now() - t0) / 1000;
    const out = join(dir, 'relocated');
    mkdirSync(out);
    const t1 = performance.now();
    const conv = runChild(['convert', path, join(out, 'model.onnx'), '--no-verify']);
    const convS = (performance.now() - t1) / 1000;
    const insp = runChild(['inspect', path]);
    // The default: ONNX Runtime loads the written model from its path (data file beside it) and runs it once.
    const checkedDir = join(dir, 'checked');
    mkdirSync(checkedDir);
    const t2 = performance.now();
    const checked = runChild(['convert', path, join(checkedDir, 'model.onnx')]);
    const checkedS = (performance.now() - t2) / 1000;
    const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
    return [
      {
        name: 'convert > 2 GB model, peak RSS / weight bytes',
        ratio: conv.peakRss / weightBytes,
        detail: `${gb(weightBytes)} weights, peak RSS ${gb(conv.peakRss)}, ${(weightBytes / 1e6 / convS).toFixed(0)} MB/s (generate ${genS.toFixed(1)} s)`,
      },
      {
        name: 'inspect > 2 GB model, peak RSS / weight bytes',
        ratio: insp.peakRss / weightBytes,
        detail: `peak RSS ${gb(insp.peakRss)}`,
      },
      {
        name: 'convert > 2 GB model with the ONNX Runtime check, peak RSS / weight bytes',
        ratio: checked.peakRss / weightBytes,
        detail: `peak RSS ${gb(checked.peakRss)}, ${checkedS.toFixed(1)} s (streaming convert alone ${convS.toFixed(1)} s)`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const row of await run()) console.log(`${row.name}: ${row.ratio.toFixed(3)} (${row.detail})`);
}

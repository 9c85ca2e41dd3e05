import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeMatMulStack } from './helpers/matmul-stack.js';
import { cosineSimilarity } from '../src/quant/metrics.js';

/*
 * quantizeFile streams: a 537 MB fp32 MatMul stack with external data is quantized by the CLI in
 * a child process whose peak RSS (VmHWM at exit) stays well under the weight bytes; the output
 * keeps its weights in a data file and ONNX Runtime runs it close to the fp32 model.
 */

const SIDE = 4096;
const LAYERS = 8; // the 8 × 4096² stack: 537 MB of fp32 weights
const WEIGHT_BYTES = LAYERS * SIDE * SIDE * 4;
const ROOT = new URL('..', import.meta.url).pathname;
const enoughDisk = statfsSync(tmpdir()).bavail * statfsSync(tmpdir()).bsize > 3 * WEIGHT_BYTES;

function writeStack(dir: string): Promise<string> {
  return writeMatMulStack(dir, { layers: LAYERS, side: SIDE, fill: 'normal' });
}

async function run(path: string, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path);
  const y = (await s.run({ x: new ort.Tensor('float32', x, [2, SIDE]) })).y?.data as Float32Array;
  await s.release();
  return y;
}

describe.skipIf(!enoughDisk)(
  'streamed quantize of a 537 MB model (external data; skipped only when the temp disk has under 1.6 GB free)',
  () => {
    let dir: string;
    let input: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'qk-wo-stream-'));
      input = await writeStack(dir);
    }, 60_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('q4 of 537 MB of fp32 weights: child peak RSS ≤ 0.5 GB (streamed: less than the weights); output has a data file; ORT output cosine ≥ 0.97 to fp32', async () => {
      const out = join(dir, 'q4.onnx');
      const rssFile = join(dir, 'rss');
      const hook = pathToFileURL(join(ROOT, 'bench/weight-only.peak-rss.ts')).href;
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--import',
          hook,
          join(ROOT, 'src/cli/bin.ts'),
          'quantize',
          input,
          '-o',
          out,
          '--scheme',
          'q4',
        ],
        {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, QK_PEAK_RSS_FILE: rssFile },
        },
      );
      expect(r.status, r.stderr).toBe(0);
      const peak = Number(readFileSync(rssFile, 'utf8'));
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(Math.min(0.5e9, WEIGHT_BYTES));
      expect(existsSync(`${out}.data`)).toBe(true);
      const x = new Float32Array(2 * SIDE).map((_, i) => Math.cos(i * 0.11));
      const [a, b] = [await run(input, x), await run(out, x)];
      expect(cosineSimilarity(a, b)).toBeGreaterThanOrEqual(0.97);
    }, 60_000);
  },
);

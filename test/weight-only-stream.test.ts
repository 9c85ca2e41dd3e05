import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeModel } from '../src/io/onnx/build.js';
import { planOnnxWrite, type TensorToWrite } from '../src/io/onnx/write.js';
import { writeOnnxModel } from '../src/node/model-writer.js';

/*
 * quantizeFile streams: a 335 MB fp32 MatMul stack with external data is quantized by the CLI in
 * a child process whose peak RSS (VmHWM at exit) stays well under the weight bytes; the output
 * keeps its weights in a data file and ONNX Runtime runs it close to the fp32 model.
 */

const SIDE = 4096;
const LAYERS = 5;
const WEIGHT_BYTES = LAYERS * SIDE * SIDE * 4;
const ROOT = new URL('..', import.meta.url).pathname;
const enoughDisk = statfsSync(tmpdir()).bavail * statfsSync(tmpdir()).bsize > 3 * WEIGHT_BYTES;

async function writeStack(dir: string): Promise<string> {
  const names = Array.from({ length: LAYERS }, (_, i) => `w${i}`);
  const skeleton = makeModel({
    nodes: names.map((w, i) => ({ opType: 'MatMul', inputs: [i === 0 ? 'x' : `h${i - 1}`, w], outputs: [i === LAYERS - 1 ? 'y' : `h${i}`], name: `mm${i}` })),
    inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', SIDE] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', SIDE] }],
    opsets: { '': 17 },
  });
  const tensors: TensorToWrite[] = names.map((name, layer) => ({
    name, dtype: 'float32', dims: [SIDE, SIDE],
    rawBytes: () => {
      const w = new Float32Array(SIDE * SIDE);
      let s = layer + 1;
      for (let i = 0; i < w.length; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; w[i] = (s / 2 ** 32 - 0.5) * (2 * Math.sqrt(3) / SIDE ** 0.5); }
      return new Uint8Array(w.buffer);
    },
  }));
  const path = join(dir, 'model.onnx');
  await writeOnnxModel(path, planOnnxWrite(skeleton, tensors, { externalData: true, dataLocation: 'model.onnx.data' }), { force: false, inputs: [] });
  return path;
}

async function run(path: string, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path);
  const y = (await s.run({ x: new ort.Tensor('float32', x, [2, SIDE]) })).y?.data as Float32Array;
  await s.release();
  return y;
}

describe.skipIf(!enoughDisk)('streamed quantize of a 335 MB model (external data)', () => {
  let dir: string;
  let input: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qk-wo-stream-'));
    input = await writeStack(dir);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('q4: child peak RSS ≤ 0.4 GB (< fp32 weights 0.34 GB + the CLI\'s own ~0.12 GB); output has a data file; ORT output cosine ≥ 0.97 to fp32', async () => {
    const out = join(dir, 'q4.onnx');
    const rssFile = join(dir, 'rss');
    const hook = pathToFileURL(join(ROOT, 'bench/weight-only.peak-rss.ts')).href;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', hook, join(ROOT, 'src/cli/bin.ts'), 'quantize', input, '-o', out, '--scheme', 'q4'], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, QK_PEAK_RSS_FILE: rssFile },
    });
    expect(r.status, r.stderr).toBe(0);
    const peak = Number(readFileSync(rssFile, 'utf8'));
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(0.4e9);
    expect(existsSync(`${out}.data`)).toBe(true);
    const x = new Float32Array(2 * SIDE).map((_, i) => Math.cos(i * 0.11));
    const [a, b] = [await run(input, x), await run(out, x)];
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) { ab += (a[i] as number) * (b[i] as number); aa += (a[i] as number) ** 2; bb += (b[i] as number) ** 2; }
    expect(ab / Math.sqrt(aa * bb)).toBeGreaterThanOrEqual(0.97);
  }, 60_000);
});

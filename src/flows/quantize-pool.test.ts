import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { planOnnxWrite, type TensorToWrite } from '../io/onnx/write.js';
import { writeOnnxModel } from '../node/model-writer.js';
import type { SchemeName } from '../passes/weight-only/index.js';
import { quantizeFile } from './quantize-file.js';

/*
 * The worker-thread path (quantize-pool.ts) against the main-thread path on the same model: the
 * output files must be byte for byte the same, report included. The model mixes what the jobs
 * must get right: a [K, N] MatMul, a Gemm with transB and alpha, a weight shared by two MatMuls,
 * K not a multiple of the block, and one excluded weight.
 */

const K = 100;

function weight(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from(
    { length: n },
    () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * ((seed % 3) + 1),
  );
}

async function writeModel(dir: string, poison?: { weight: number; index: number; value: number }): Promise<string> {
  const skeleton = makeModel({
    nodes: [
      { opType: 'MatMul', inputs: ['x', 'w0'], outputs: ['h0'], name: 'mm0' },
      { opType: 'Gemm', inputs: ['h0', 'w1'], outputs: ['h1'], name: 'gemm1', attributes: { transB: 1, alpha: 0.5 } },
      { opType: 'MatMul', inputs: ['h1', 'w2'], outputs: ['h2'], name: 'mm2' },
      { opType: 'MatMul', inputs: ['h2', 'w2'], outputs: ['h3'], name: 'mm3' },
      { opType: 'MatMul', inputs: ['h3', 'w3'], outputs: ['y'], name: 'mm4' },
    ],
    inputs: [{ name: 'x', dtype: 'float32', dims: [2, K] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: [2, K] }],
    opsets: { '': 17 },
  });
  const dims: Record<string, number[]> = { w0: [K, K], w1: [K, K], w2: [K, K], w3: [K, K] };
  const tensors: TensorToWrite[] = Object.entries(dims).map(([name, d], i) => ({
    name,
    dtype: 'float32',
    dims: d,
    rawBytes: () => {
      const w = weight(i + 7, K * K);
      if (poison?.weight === i) w[poison.index] = poison.value;
      return new Uint8Array(w.buffer);
    },
  }));
  const path = join(dir, poison ? 'poisoned.onnx' : 'model.onnx');
  await writeOnnxModel(
    path,
    planOnnxWrite(skeleton, tensors, {
      externalData: true,
      threshold: 0,
      dataLocation: poison ? 'poisoned.onnx.data' : 'model.onnx.data',
    }),
    { force: false, inputs: [] },
  );
  return path;
}

describe('quantizeFile on worker threads', () => {
  let dir: string;
  let input: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qk-pool-'));
    input = await writeModel(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const scheme of ['q4', 'int8', 'fp4', 'nf4'] as const) {
    it(`${scheme}: a NaN in a weight fails with the same named error as on the main thread`, async () => {
      const bad = await writeModel(mkdtempSync(join(dir, 'bad')), { weight: 2, index: 3 * K + 5, value: NaN });
      for (const pool of [{ threads: 1 }, { threads: 2, fromBytes: 0 }]) {
        await expect(
          quantizeFile(bad, join(dir, `bad-${scheme}.onnx`), { scheme, force: true, pool }),
        ).rejects.toMatchObject({ code: 'QK_NONFINITE_WEIGHTS', message: expect.stringContaining('w2') as unknown });
      }
    });
  }

  const cases: [SchemeName, Record<string, unknown>][] = [
    ['q4', {}],
    ['q4', { rtn: true }],
    ['q4-asym', { blockSize: 16 }],
    ['q8-block', {}],
    ['int8', {}],
    ['q4', { exclude: ['w3'] }],
    ['fp4', {}],
    ['fp4', { rtn: true, blockSize: 32 }],
    ['nf4', {}],
    ['nf4', { doubleQuant: true }],
  ];
  for (const [scheme, extra] of cases) {
    it(`${scheme} ${JSON.stringify(extra)}: the same bytes and report as on the main thread`, async () => {
      const run = async (tag: string, pool: { threads: number; fromBytes?: number }) => {
        // Same file name in both runs: the data file's name is written into the model.
        const outDir = mkdtempSync(join(dir, tag));
        const out = join(outDir, 'out.onnx');
        const r = await quantizeFile(input, out, { scheme, ...extra, force: true, pool });
        return { r, model: readFileSync(out), data: readFileSync(`${out}.data`) };
      };
      const main = await run('main', { threads: 1 });
      const workers = await run('workers', { threads: 2, fromBytes: 0 });
      expect(workers.model.equals(main.model)).toBe(true);
      expect(workers.data.equals(main.data)).toBe(true);
      expect(workers.r.report).toEqual(main.r.report);
      expect(main.r.report.totals.quantizedLayers).toBe('exclude' in extra ? 3 : 4);
      expect(main.r.workerResults).toBe(0);
      expect(workers.r.workerResults).toBe('exclude' in extra ? 3 : 4); // w2 is shared: one job
    });
  }
});

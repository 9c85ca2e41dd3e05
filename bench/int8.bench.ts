// ONNX Runtime latency of int8 models against their fp32 originals, measured side by side in
// the same process (interleaved runs, median), for the digits CNN and the char LM.
// ratio = int8 time / fp32 time (below 1: int8 is faster).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import type { Model } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { foldBatchNorm } from '../src/passes/fold-batchnorm.js';
import { quantizeDynamic, type DynamicOptions } from '../src/passes/activation/dynamic.js';

const MODELS = join(dirname(fileURLToPath(import.meta.url)), '..', 'models');
const read = (f: string) => readFileSync(join(MODELS, f));

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  // One thread: the comparison is of kernels, not of how two cores are shared.
  return ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** Median ms per run of each session, runs interleaved so drift hits both alike. */
async function sideBySide(
  a: ort.InferenceSession,
  b: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  rounds: number,
): Promise<[number, number]> {
  for (let i = 0; i < 5; i++) {
    await a.run(feeds);
    await b.run(feeds);
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await a.run(feeds);
    ta.push(performance.now() - t);
    t = performance.now();
    await b.run(feeds);
    tb.push(performance.now() - t);
  }
  return [median(ta), median(tb)];
}

const fresh = (bytes: Uint8Array): Model => modelFromProto(decodeModel(bytes));
const dynamic = (bytes: Uint8Array, o: DynamicOptions): Uint8Array => {
  const m = fresh(bytes);
  foldBatchNorm(m);
  quantizeDynamic(m, o);
  return encodeModel(modelToProto(m));
};
const statics = async (
  bytes: Uint8Array,
  input: string,
  calib: ReturnType<typeof readNpy>,
  smoothQuant?: number,
): Promise<Uint8Array> => {
  const m = fresh(bytes);
  await quantizeStatic(m, new Map([[input, calib]]), { method: parseCalibMethod('minmax'), smoothQuant });
  return encodeModel(modelToProto(m));
};

export async function run(): Promise<{ name: string; ratio: number; detail: string }[]> {
  const results: { name: string; ratio: number; detail: string }[] = [];
  const cnn = read('cnn.onnx');
  const lm = read('lm.onnx');
  const cnnX = readNpy(read('cnn-test-x.npy'));
  const cnnFeeds = {
    input: new ort.Tensor('float32', (cnnX.data as Float32Array).subarray(0, 256 * 64), [256, 1, 8, 8]),
  };
  const ids = readNpy(read('lm-calib.npy'));
  const lmFeeds = { input_ids: new ort.Tensor('int64', (ids.data as BigInt64Array).subarray(0, 8 * 64), [8, 64]) };

  const cases: {
    model: string;
    name: string;
    base?: string;
    fp32: Uint8Array;
    int8: () => Promise<Uint8Array> | Uint8Array;
    feeds: Record<string, ort.Tensor>;
    rounds: number;
  }[] = [
    {
      model: 'cnn',
      name: 'int8-static QDQ (minmax)',
      fp32: cnn,
      int8: () => statics(cnn, 'input', readNpy(read('cnn-calib-x.npy'))),
      feeds: cnnFeeds,
      rounds: 200,
    },
    {
      model: 'cnn',
      name: 'int8-dynamic (Gemm only; Conv kept fp32, default)',
      fp32: cnn,
      int8: () => dynamic(cnn, {}),
      feeds: cnnFeeds,
      rounds: 200,
    },
    {
      model: 'cnn',
      name: 'int8-dynamic with ConvInteger (conv: true)',
      fp32: cnn,
      int8: () => dynamic(cnn, { conv: true }),
      feeds: cnnFeeds,
      rounds: 200,
    },
    {
      model: 'lm',
      name: 'int8-dynamic DQL+MatMulInteger (default)',
      fp32: lm,
      int8: () => dynamic(lm, { form: 'integer' }),
      feeds: lmFeeds,
      rounds: 100,
    },
    {
      model: 'lm',
      name: 'int8-dynamic DynamicQuantizeMatMul',
      fp32: lm,
      int8: () => dynamic(lm, { form: 'contrib' }),
      feeds: lmFeeds,
      rounds: 100,
    },
    {
      model: 'lm',
      name: 'int8-dynamic DynamicQuantizeMatMul vs DQL+MatMulInteger',
      base: 'DQL+MatMulInteger',
      fp32: dynamic(lm, { form: 'integer' }),
      int8: () => dynamic(lm, { form: 'contrib' }),
      feeds: lmFeeds,
      rounds: 200,
    },
    {
      model: 'lm',
      name: 'int8-dynamic per-token',
      fp32: lm,
      int8: () => dynamic(lm, { perToken: true }),
      feeds: lmFeeds,
      rounds: 100,
    },
    {
      model: 'lm',
      name: 'int8-static QDQ + SmoothQuant',
      fp32: lm,
      int8: () => statics(lm, 'input_ids', ids, 0.5),
      feeds: lmFeeds,
      rounds: 100,
    },
  ];
  for (const c of cases) {
    const a = await session(c.fp32);
    const b = await session(await c.int8());
    const [fp32Ms, int8Ms] = await sideBySide(a, b, c.feeds, c.rounds);
    await a.release();
    await b.release();
    results.push({
      name: c.base ? `${c.model} ${c.name} latency` : `${c.model} ${c.name} vs fp32 latency`,
      ratio: int8Ms / fp32Ms,
      detail: `${int8Ms.toFixed(3)} ms vs ${c.base ?? 'fp32'} ${fp32Ms.toFixed(3)} ms per batch (ORT 1 thread, median of ${c.rounds}; ratio = time / ${c.base ?? 'fp32'} time)`,
    });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await run()) console.log(`${r.name}: ${r.ratio.toFixed(2)}× — ${r.detail}`);
}

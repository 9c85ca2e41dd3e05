// The int8 GEMM (MatMulInteger, 2-D) of src/kernels: the fast JS kernel beside its reference, a
// plain fp32 JS GEMM of the same shape and onnxruntime-node's MatMulInteger s8×s8 (one thread),
// all in one process. ratio = their time / our fast kernel's time (above 1: ours is faster).
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { makeModel } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { gemmF32Tiled, packF32 } from '../src/kernels/gemm-f32.js';
import { gemmInt8Packed, packB } from '../src/kernels/gemm-int8.js';
import { gemmInt8Ref } from '../src/kernels/gemm-int8.ref.js';
import { mulberry32 } from '../src/quant/prng.js';
import type { BenchResult } from './run.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/**
 * Median ms of `f`, repeated until `budgetMs` is spent (at least `min` runs), after one warm-up
 * call unless `warm` is false (the slow baselines at the big shapes, compiled by the smaller ones).
 */
async function timeIt(f: () => unknown, budgetMs: number, min = 3, warm = true): Promise<number> {
  if (warm) await f();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < min || performance.now() - start < budgetMs) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return median(times);
}

/** The plain fp32 GEMM a JS user would write: i-k-j order, so the inner loop runs along rows. */
function gemmF32(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t] as number;
      const row = t * n;
      const out = i * n;
      for (let j = 0; j < n; j++) c[out + j] = (c[out + j] as number) + av * (b[row + j] as number);
    }
  return c;
}

function s8(count: number, seed: number): Int8Array {
  const u = mulberry32(seed);
  return Int8Array.from({ length: count }, () => Math.floor(u() * 256) - 128);
}

async function ortSession(b: Int8Array, k: number, n: number): Promise<ort.InferenceSession> {
  const model = makeModel({
    nodes: [{ opType: 'MatMulInteger', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [{ name: 'a', dtype: 'int8', dims: ['M', k] }],
    outputs: [{ name: 'y', dtype: 'int32', dims: ['M', n] }],
    initializers: { b: { dtype: 'int8', dims: [k, n], data: b } },
  });
  return ort.InferenceSession.create(encodeModel(model), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
}

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const kn of [512, 2048]) {
    const [k, n] = [kn, kn];
    const b = s8(k * n, kn);
    const bF32 = Float32Array.from(b);
    const bPanels = packF32(bF32, k, n);
    const packStart = performance.now();
    const packed = packB(b, k, n, 0);
    const packMs = performance.now() - packStart;
    const session = await ortSession(b, k, n);
    for (const m of [1, 16, 128]) {
      const a = s8(m * k, m + kn);
      const aF32 = Float32Array.from(a);
      const feeds = { a: new ort.Tensor('int8', a, [m, k]) };
      // The budget grows with the work so the small shapes get many runs, the big few.
      const budget = m * kn >= 128 * 2048 ? 600 : 300;
      const fastMs = await timeIt(() => gemmInt8Packed(a, m, 0, packed), budget);
      const big = m >= 16;
      const refMs = await timeIt(() => gemmInt8Ref({ a, b, m, k, n, aZero: 0, bZero: 0 }), budget, 1, !big);
      const f32Ms = await timeIt(() => gemmF32(aF32, bF32, m, k, n), budget, 1, !big);
      const tiledMs = await timeIt(() => gemmF32Tiled(aF32, bPanels, m, k, n), budget, 2);
      const ortMs = await timeIt(() => session.run(feeds), budget, 5);
      const gops = (ms: number) => ((2 * m * k * n) / ms / 1e6).toFixed(2);
      const shape = `M=${m} K=N=${kn}`;
      const fast = `fast ${fastMs.toFixed(3)} ms (${gops(fastMs)} GOP/s)`;
      results.push(
        {
          name: `int8 GEMM ${shape} fast vs reference`,
          ratio: refMs / fastMs,
          detail: `${fast} vs reference ${refMs.toFixed(3)} ms (${gops(refMs)} GOP/s); B packed once, ${packMs.toFixed(1)} ms`,
        },
        {
          name: `int8 GEMM ${shape} fast vs JS fp32 GEMM`,
          ratio: f32Ms / fastMs,
          detail: `${fast} vs plain JS fp32 i-k-j ${f32Ms.toFixed(3)} ms (${gops(f32Ms)} GFLOP/s)`,
        },
        {
          name: `int8 GEMM ${shape} fast vs JS fp32 GEMM tiled`,
          ratio: tiledMs / fastMs,
          detail: `${fast} vs JS fp32 packed 4×4 tiles ${tiledMs.toFixed(3)} ms (${gops(tiledMs)} GFLOP/s)`,
        },
        {
          name: `int8 GEMM ${shape} fast vs ORT s8×s8`,
          ratio: ortMs / fastMs,
          detail: `${fast} vs onnxruntime-node MatMulInteger s8×s8, 1 thread, ${ortMs.toFixed(3)} ms (${gops(ortMs)} GOP/s)`,
        },
      );
    }
    await session.release();
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await run()) console.log(`${r.name}: ${r.ratio.toFixed(2)}× — ${r.detail}`);
}

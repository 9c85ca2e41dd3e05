// The int8 GEMM (MatMulInteger, 2-D) of src/kernels: the fast JS kernel beside its reference, a
// plain fp32 JS GEMM of the same shape and onnxruntime-node's MatMulInteger s8×s8 (one thread),
// all in one process. ratio = their time / our fast kernel's time (above 1: ours is faster).
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { makeModel } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
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

/**
 * An fp32 GEMM built like the int8 kernel (B packed into 4-column panels once, 4×4 tiles in
 * local accumulators), so the int8 kernel is also measured against fp32 tuned alike.
 */
function packF32(b: Float32Array, k: number, n: number): Float32Array {
  const np = Math.ceil(n / 4);
  const panels = new Float32Array(np * k * 4);
  for (let t = 0; t < k; t++)
    for (let j = 0; j < n; j++) panels[(((j / 4) | 0) * k + t) * 4 + (j & 3)] = b[t * n + j] as number;
  return panels;
}

function gemmF32Tiled(a: Float32Array, panels: Float32Array, m: number, k: number, n: number): Float32Array {
  const np = Math.ceil(n / 4);
  const ldc = np * 4;
  const c = new Float32Array(m * ldc);
  for (let i = 0; i < m; i += 4) {
    const rows = Math.min(4, m - i);
    // Rows past M read row i again and are not stored (so at M = 1 it does 4 rows of work).
    const r1 = (i + Math.min(1, rows - 1)) * k;
    const r2 = (i + Math.min(2, rows - 1)) * k;
    const r3 = (i + Math.min(3, rows - 1)) * k;
    const r0 = i * k;
    for (let p = 0; p < np; p++) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0; // prettier-ignore
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0; // prettier-ignore
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0; // prettier-ignore
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0; // prettier-ignore
      for (let t = 0, bi = p * k * 4; t < k; t++, bi += 4) {
        const a0 = a[r0 + t] as number;
        const a1 = a[r1 + t] as number;
        const a2 = a[r2 + t] as number;
        const a3 = a[r3 + t] as number;
        const b0 = panels[bi] as number;
        const b1 = panels[bi + 1] as number;
        const b2 = panels[bi + 2] as number;
        const b3 = panels[bi + 3] as number;
        c00 += a0 * b0;
        c01 += a0 * b1;
        c02 += a0 * b2;
        c03 += a0 * b3; // prettier-ignore
        c10 += a1 * b0;
        c11 += a1 * b1;
        c12 += a1 * b2;
        c13 += a1 * b3; // prettier-ignore
        c20 += a2 * b0;
        c21 += a2 * b1;
        c22 += a2 * b2;
        c23 += a2 * b3; // prettier-ignore
        c30 += a3 * b0;
        c31 += a3 * b1;
        c32 += a3 * b2;
        c33 += a3 * b3; // prettier-ignore
      }
      const tile = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
      for (let r = 0; r < rows; r++)
        for (let s = 0; s < 4; s++) c[(i + r) * ldc + p * 4 + s] = tile[r * 4 + s] as number;
    }
  }
  if (ldc === n) return c;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) out.set(c.subarray(i * ldc, i * ldc + n), i * n);
  return out;
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

/**
 * `quantkit bench`: our kernels beside ONNX Runtime's operators (onnxruntime-node, and
 * onnxruntime-web's WebAssembly build running in this Node), and ORT latency of the models our
 * quantizer writes beside their fp32 originals. Every figure is a ratio of two timings taken in
 * this run, interleaved (one of ours, one of theirs, …; lower quartiles of process CPU time).
 * Ratios are named `<ours>_vs_<theirs>_ratio`, higher = ours faster.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { parseCalibMethod } from '../calib/method.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { readNpy } from '../io/npy/npy.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { computeWasmAvailable } from '../kernels/compute-wasm.js';
import { convInt8, prepareConvInt8Weights } from '../kernels/conv-int8.js';
import type { ConvInt8Problem } from '../kernels/conv-int8.ref.js';
import { gemmF32Tiled, packF32 } from '../kernels/gemm-f32.js';
import {
  gemmInt8Prepacked,
  gemvBnb4,
  gemvNBits,
  allocKernelCodes,
  allocKernelFloat32,
  kernelPath,
  kernelThreadsReady,
  quantizeLinearInt8Resident,
  packGemmInt8B,
  quantizeLinearInt8,
  setKernelWorkerHost,
  stopKernelThreads,
  type Bnb4GemvWeights,
  type NBitsGemvWeights,
} from '../kernels/index.js';
import { nodeKernelWorkerHost } from '../node/kernel-workers.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { quantizeDynamic } from '../passes/activation/dynamic.js';
import { FAST_MIN_CONV_REDUCTION } from '../passes/activation/plan.js';
import { NF4_TABLE } from '../quant/codebook.js';
import { mulberry32 } from '../quant/prng.js';
import {
  convIntegerModel,
  matMulBnb4Model,
  matMulF32Model,
  matMulIntegerModel,
  matMulNBitsModel,
  quantizeLinearModel,
} from './bench-graphs.js';
import { quantizeStatic } from './calibrate-node.js';
import { SHIPPED_MODELS_DIR } from './demo-models.js';
import { quantizeModelBytes } from './quantize.js';

export interface BenchOptions {
  /** A small subset at small sizes (seconds, for a smoke test), not the figures to quote. */
  readonly quick?: boolean;
  /** Only these groups (default all). */
  readonly only?: readonly BenchGroup[] | undefined;
  /** Called before each measurement with what it measures. */
  readonly onStep?: ((label: string) => void) | undefined;
  /** Threads of the "all threads" rows, ours and ORT's alike (default: every core; 1: no such rows). */
  readonly threads?: number | undefined;
}

export const BENCH_GROUPS = ['quantize', 'gemm', 'gemv', 'conv', 'models'] as const;
export type BenchGroup = (typeof BENCH_GROUPS)[number];

export interface BenchRow {
  readonly key: string;
  readonly label: string;
  readonly oursMs: number;
  readonly theirsMs: number;
  readonly ratio: number;
  /** Work per run, to turn times into rates: bytes read (GB/s) or operations (GOP/s). */
  readonly rate?: { readonly unit: 'GB/s' | 'GOP/s'; readonly ours: number; readonly theirs: number };
}

export interface BenchReport {
  readonly quick: boolean;
  readonly kernels: 'wasm-simd' | 'js';
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly ortNodeVersion: string;
  /** Every ratio by key, and `<key minus _ratio>_ours_<unit>` rates. */
  readonly figures: Record<string, number>;
  /** Bit-exactness seen during the run (our codes = ORT's). */
  readonly checks: Record<string, boolean>;
  readonly rows: readonly BenchRow[];
  readonly notes: readonly string[];
}

type Run = () => unknown;

/** The lower quartile: steadier than the median where a shared machine or a GC helper thread (whose CPU time the process clock counts) slows some runs. */
function lowerQuartile(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 4)] as number;
}

/**
 * Process CPU time in ms. Both sides run on one thread (ours, ORT's single-thread sessions,
 * onnxruntime-web's one WebAssembly thread), so a run's CPU time is its compute without the
 * time a shared machine kept it descheduled: ratios of CPU times are steady where wall-clock
 * ones swing with the load. Rows over all threads use wall-clock time.
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Lower-quartile ms of each, runs alternating (ours, theirs, ours, …) until `budgetMs` of wall time has
 * passed and each ran `min` times; `clock` measures a run.
 */
async function sideBySide(
  ours: Run,
  theirs: Run,
  budgetMs: number,
  min = 3,
  clock: () => number = cpuMs,
  before: () => void = () => {},
): Promise<[number, number]> {
  await ours();
  await theirs();
  const a: number[] = [];
  const b: number[] = [];
  const start = performance.now();
  while (a.length < min || performance.now() - start < budgetMs) {
    before();
    let t = clock();
    await ours();
    a.push(clock() - t);
    before();
    t = clock();
    await theirs();
    b.push(clock() - t);
  }
  return [lowerQuartile(a), lowerQuartile(b)];
}

/**
 * Reads 128 MiB (one float per 64-byte line), evicting from every cache level what the next
 * run reads: run untimed before each timed run where a row measures a weight that comes from
 * memory, as a decoder's weights do (each is read once per token, and they outgrow the caches).
 */
let evictBuffer: Float32Array | undefined;
function evictCaches(): void {
  evictBuffer ??= new Float32Array(32 << 20).fill(1);
  let s = 0;
  for (let i = 0; i < evictBuffer.length; i += 16) s += evictBuffer[i] as number;
  evictBuffer[0] = Math.min(1, s); // stored (unchanged: 1), so the reads are not dead code
}

type Session = { run(feeds: Record<string, unknown>): Promise<unknown>; release(): Promise<void> };

async function nodeSession(bytes: Uint8Array, threads = 1): Promise<Session> {
  return (await ortNode.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  })) as unknown as Session;
}

let webReady = false;
async function webSession(bytes: Uint8Array): Promise<Session> {
  if (!webReady) {
    ortWeb.env.wasm.numThreads = 1;
    webReady = true;
  }
  return (await ortWeb.InferenceSession.create(bytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  })) as unknown as Session;
}

function bytesRandom(count: number, seed: number): Uint8Array {
  const u = mulberry32(seed);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (u() * 256) | 0;
  return out;
}

function floatsRandom(count: number, seed: number, lo: number, hi: number): Float32Array {
  const u = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = lo + (hi - lo) * u();
  return out;
}

const wallMs = () => performance.now();

/**
 * The rows of one kernel on T threads (wall clock: CPU time sums over threads): ours against
 * ORT-node's session with intra_op_num_threads = T, ours against ours on one thread (the speedup
 * threads bring), and that pair again in CPU time. On a machine shared with other jobs the
 * wall-clock rows mostly measure how soon the scheduler runs every thread of a call at once.
 */
async function threadedRows(
  r: Recorder,
  t: number,
  base: string,
  theirsKey: string,
  label: string,
  runs: { readonly ours1: Run; readonly oursT: Run; readonly theirsT: Run },
  budget: number,
  work?: { unit: 'GB/s' | 'GOP/s'; amount: number },
): Promise<void> {
  let [o, th] = await sideBySide(runs.oursT, runs.theirsT, budget, 3, wallMs);
  r.add(
    `${base}_threads${t}_vs_${theirsKey}_threads${t}_ratio`,
    `${label}, ${t} threads, vs ORT-node ${t} threads`,
    o,
    th,
    work,
  );
  [o, th] = await sideBySide(runs.oursT, runs.ours1, budget, 3, wallMs);
  r.add(
    `${base}_threads${t}_vs_ours_1_thread_ratio`,
    `${label}: ours on ${t} threads vs ours on 1 (speedup)`,
    o,
    th,
    work,
  );
  // The same pair in process CPU time (all threads summed): 1 = the split wastes no work, so on
  // otherwise idle cores the wall-clock speedup approaches t times this.
  [o, th] = await sideBySide(runs.oursT, runs.ours1, budget, 3);
  r.add(
    `${base}_threads${t}_cpu_vs_ours_1_thread_cpu_ratio`,
    `${label}: CPU time of ours on ${t} threads vs on 1 (1 = no work wasted)`,
    o,
    th,
  );
}

class Recorder {
  readonly rows: BenchRow[] = [];
  readonly figures: Record<string, number> = {};
  constructor(private readonly onStep: ((label: string) => void) | undefined) {}

  step(label: string): void {
    this.onStep?.(label);
  }

  /** Adds a row; `work` is bytes (GB/s) or operations (GOP/s) per run. */
  add(
    key: string,
    label: string,
    oursMs: number,
    theirsMs: number,
    work?: { unit: 'GB/s' | 'GOP/s'; amount: number },
  ): void {
    const ratio = theirsMs / oursMs;
    const rate = work && {
      unit: work.unit,
      ours: work.amount / oursMs / 1e6,
      theirs: work.amount / theirsMs / 1e6,
    };
    this.rows.push({ key, label, oursMs, theirsMs, ratio, ...(rate ? { rate } : {}) });
    this.figures[key] = ratio;
    if (rate) {
      const unit = rate.unit === 'GB/s' ? 'gb_per_s' : 'gop_per_s';
      const base = key.replace(/_ratio$/, '');
      this.figures[`${base}_ours_${unit}`] = rate.ours;
      this.figures[`${base}_theirs_${unit}`] = rate.theirs;
    }
  }
}

// ------------------------------------------------------------------------------------------------

async function benchQuantize(
  r: Recorder,
  quick: boolean,
  checks: Record<string, boolean>,
  threads: number,
): Promise<void> {
  // A weight [N, K] quantized per output channel (axis 0: one scale per row of K), and the
  // same bytes per column (axis 1 of [K, N]: one scale per element along a row).
  const side = quick ? 512 : 4096;
  const count = side * side;
  const budget = quick ? 60 : 1500;
  const x = floatsRandom(count, 1, -1, 1);
  const copy = new Float32Array(count);
  for (const [axisName, dims] of [
    ['axis0', [1, side, side]],
    ['axis1', [side, side, 1]],
  ] as const) {
    const c = dims[1];
    const scale = floatsRandom(c, 2, 1 / 200, 1 / 100);
    const zp = Int8Array.from({ length: c }, (_, j) => (j % 7) - 3);
    const p = { scale, zeroPoint: zp, signed: true, inner: dims[2] };
    const what = `quantize fp32→int8 per channel (${axisName}, [${side}, ${side}])`;
    r.step(what);
    // Both sides write into an output allocated once (ORT-node takes it as a fetch), as the memcpy does.
    const out = new Int8Array(count);
    const theirOut = new ortNode.Tensor('int8', new Int8Array(count), [...dims]);
    const session = await ortNode.InferenceSession.create(quantizeLinearModel(dims, scale, zp), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    const feeds = { x: new ortNode.Tensor('float32', x, [...dims]) };
    await session.run(feeds, { y: theirOut });
    checks[`quantize_per_channel_${axisName}_bit_exact_vs_ort_node`] =
      Buffer.compare(
        Buffer.from(quantizeLinearInt8(x, p, out).buffer),
        Buffer.from((theirOut.data as Int8Array).buffer),
      ) === 0;
    const [ours, ort] = await sideBySide(
      () => quantizeLinearInt8(x, p, out),
      () => session.run(feeds, { y: theirOut }),
      budget,
    );
    const base = axisName === 'axis0' ? 'quantize_per_channel' : 'quantize_per_channel_axis1';
    r.add(`${base}_vs_ort_node_quantizelinear_ratio`, `${what} vs onnxruntime-node QuantizeLinear`, ours, ort, {
      unit: 'GB/s',
      amount: count * 4,
    });
    if (axisName === 'axis0') {
      const [ours2, mem] = await sideBySide(
        () => quantizeLinearInt8(x, p, out),
        () => copy.set(x),
        budget,
      );
      r.add(
        `${base}_vs_memcpy_ratio`,
        `${what}, JS arrays in and out, vs memcpy of the same fp32 input into another array (TypedArray.set)`,
        ours2,
        mem,
        {
          unit: 'GB/s',
          amount: count * 4,
        },
      );
      // The same with x and the codes already where the kernel works (a caller that keeps them there):
      // no copy in or out on our side; ORT-node too reads its input and writes its output in place.
      const xs = allocKernelFloat32(count);
      xs.view().set(x);
      const codesK = allocKernelCodes(count, true);
      quantizeLinearInt8Resident(xs, p, codesK);
      checks[`quantize_per_channel_${axisName}_in_kernel_memory_bit_exact_vs_ort_node`] =
        Buffer.compare(Buffer.from(codesK.view()), Buffer.from(theirOut.data as Int8Array)) === 0;
      const resident = () => quantizeLinearInt8Resident(xs, p, codesK);
      const [ours4, mem2] = await sideBySide(resident, () => copy.set(x), budget);
      r.add(
        `${base}_in_kernel_memory_vs_memcpy_ratio`,
        `${what}, x and codes kept in kernel memory (allocKernelFloat32/allocKernelCodes), vs memcpy of the same fp32 input into another array (TypedArray.set)`,
        ours4,
        mem2,
        { unit: 'GB/s', amount: count * 4 },
      );
      const [ours5, ort2] = await sideBySide(resident, () => session.run(feeds, { y: theirOut }), budget);
      r.add(
        `${base}_in_kernel_memory_vs_ort_node_quantizelinear_ratio`,
        `${what}, x and codes kept in kernel memory, vs onnxruntime-node QuantizeLinear`,
        ours5,
        ort2,
        { unit: 'GB/s', amount: count * 4 },
      );
      xs.release();
      codesK.release();
      const web = await webSession(quantizeLinearModel(dims, scale, zp));
      const webFeeds = { x: new ortWeb.Tensor('float32', x, [...dims]) };
      const [ours3, w] = await sideBySide(
        () => quantizeLinearInt8(x, p, out),
        () => web.run(webFeeds),
        budget,
      );
      await web.release();
      r.add(`${base}_vs_ort_web_quantizelinear_ratio`, `${what} vs onnxruntime-web QuantizeLinear`, ours3, w, {
        unit: 'GB/s',
        amount: count * 4,
      });
      if (threads > 1) {
        const all = await nodeSession(quantizeLinearModel(dims, scale, zp), threads);
        const outT = new Int8Array(count);
        checks[`quantize_per_channel_threads${threads}_bit_exact_vs_1_thread`] =
          Buffer.compare(
            Buffer.from(quantizeLinearInt8(x, p, outT, { threads }).buffer),
            Buffer.from(quantizeLinearInt8(x, p, out).buffer),
          ) === 0;
        const theirOutT = new ortNode.Tensor('int8', new Int8Array(count), [...dims]);
        await threadedRows(
          r,
          threads,
          base,
          'ort_node_quantizelinear',
          what,
          {
            ours1: () => quantizeLinearInt8(x, p, out),
            oursT: () => quantizeLinearInt8(x, p, outT, { threads }),
            theirsT: () => (all.run as (f: unknown, o: unknown) => Promise<unknown>)(feeds, { y: theirOutT }),
          },
          budget,
          { unit: 'GB/s', amount: count * 4 },
        );
        await all.release();
      }
    }
    await session.release();
  }
}

async function benchGemm(r: Recorder, quick: boolean, threads: number): Promise<void> {
  const sizes = quick ? [256] : [512, 2048, 4096];
  const ms = quick ? [1, 16] : [1, 16, 128];
  for (const kn of sizes) {
    const [k, n] = [kn, kn];
    const bBytes = bytesRandom(k * n, kn);
    const b = new Int8Array(bBytes.buffer);
    const bF32 = Float32Array.from(b);
    const bPanels = packF32(bF32, k, n);
    const packed = packGemmInt8B(b, 0, k, n);
    const nodeU8 = await nodeSession(matMulIntegerModel('uint8', b, k, n));
    const nodeS8 = await nodeSession(matMulIntegerModel('int8', b, k, n));
    const web = await webSession(matMulIntegerModel('uint8', b, k, n));
    const nodeU8All = quick ? undefined : await nodeSession(matMulIntegerModel('uint8', b, k, n), 0);
    for (const m of ms) {
      const aU8 = bytesRandom(m * k, m + kn);
      const aS8 = new Int8Array(bytesRandom(m * k, m + kn + 1).buffer);
      const aF32 = Float32Array.from(aS8);
      const ops = 2 * m * k * n;
      const budget = quick ? 40 : ops >= 2 * 128 * 2048 * 2048 ? 3000 : 800;
      const shape = `M=${m} K=N=${kn}`;
      const tag = `gemm_int8_m${m}_k${kn}`;
      const gop = { unit: 'GOP/s' as const, amount: ops };
      const ours = () => gemmInt8Prepacked(aU8, 128, packed, m);
      const oursS8 = () => gemmInt8Prepacked(aS8, 0, packed, m);
      r.step(`int8 GEMM ${shape}`);
      const webFeeds = { a: new ortWeb.Tensor('uint8', aU8, [m, k]) };
      let [o, t] = await sideBySide(ours, () => web.run(webFeeds), budget);
      r.add(
        `${tag}_vs_ort_web_matmulinteger_ratio`,
        `int8 GEMM u8×s8 ${shape} vs onnxruntime-web MatMulInteger u8×s8 (1 thread${m === 1 ? '; B as the alternating runs leave it' : ''})`,
        o,
        t,
        gop,
      );
      if (m === 1 && !quick && kn >= 2048) {
        // Decoding's case: B (K·N bytes) read from memory, both sides' caches emptied before each run.
        [o, t] = await sideBySide(ours, () => web.run(webFeeds), budget, 5, cpuMs, evictCaches);
        r.add(
          `${tag}_b_from_memory_vs_ort_web_matmulinteger_ratio`,
          `int8 GEMM u8×s8 ${shape}, B from memory (caches emptied before every run), vs onnxruntime-web MatMulInteger (1 thread)`,
          o,
          t,
          gop,
        );
        const bCopy = new Int8Array(k * n);
        [o, t] = await sideBySide(ours, () => bCopy.set(b), budget, 5, cpuMs, evictCaches);
        r.add(
          `${tag}_b_from_memory_vs_memcpy_ratio`,
          `int8 GEMM u8×s8 ${shape}, B from memory, vs memcpy of B's ${k * n} bytes (TypedArray.set, from memory too)`,
          o,
          t,
          { unit: 'GB/s', amount: k * n },
        );
      }
      const u8Feeds = { a: new ortNode.Tensor('uint8', aU8, [m, k]) };
      [o, t] = await sideBySide(ours, () => nodeU8.run(u8Feeds), budget);
      r.add(
        `${tag}_vs_ort_node_u8s8_ratio`,
        `int8 GEMM u8×s8 ${shape} vs onnxruntime-node MatMulInteger u8×s8 (1 thread)`,
        o,
        t,
        gop,
      );
      const s8Feeds = { a: new ortNode.Tensor('int8', aS8, [m, k]) };
      [o, t] = await sideBySide(oursS8, () => nodeS8.run(s8Feeds), budget);
      r.add(
        `${tag}_s8s8_vs_ort_node_s8s8_ratio`,
        `int8 GEMM s8×s8 ${shape} vs onnxruntime-node MatMulInteger s8×s8 (1 thread)`,
        o,
        t,
        gop,
      );
      if (nodeU8All && m === 128) {
        [o, t] = await sideBySide(
          ours,
          () => nodeU8All.run(u8Feeds),
          budget,
          3,
          () => performance.now(),
        );
        r.add(
          `${tag}_vs_ort_node_u8s8_all_threads_ratio`,
          `int8 GEMM u8×s8 ${shape} (ours 1 thread) vs onnxruntime-node u8×s8, all ${cpus().length} threads`,
          o,
          t,
          gop,
        );
      }
      if (threads > 1 && m === ms[ms.length - 1] && (quick || kn === 2048)) {
        const nodeT = await nodeSession(matMulIntegerModel('uint8', b, k, n), threads);
        await threadedRows(
          r,
          threads,
          tag,
          'ort_node_u8s8',
          `int8 GEMM u8×s8 ${shape}`,
          {
            ours1: ours,
            oursT: () => gemmInt8Prepacked(aU8, 128, packed, m, { threads }),
            theirsT: () => nodeT.run(u8Feeds),
          },
          budget,
          gop,
        );
        await nodeT.release();
        // s8×s8, where ORT-node has no VNNI/AMX path either.
        const nodeS8T = await nodeSession(matMulIntegerModel('int8', b, k, n), threads);
        [o, t] = await sideBySide(
          () => gemmInt8Prepacked(aS8, 0, packed, m, { threads }),
          () => nodeS8T.run(s8Feeds),
          budget,
          3,
          wallMs,
        );
        await nodeS8T.release();
        r.add(
          `${tag}_s8s8_threads${threads}_vs_ort_node_s8s8_threads${threads}_ratio`,
          `int8 GEMM s8×s8 ${shape}, ${threads} threads, vs ORT-node s8×s8 ${threads} threads`,
          o,
          t,
          gop,
        );
      }
      // The fp32 GEMM is slow at the big shapes: a few runs suffice.
      [o, t] = await sideBySide(
        ours,
        () => gemmF32Tiled(aF32, bPanels, m, k, n),
        quick ? 40 : Math.min(budget, 1500),
        2,
      );
      r.add(
        `${tag}_vs_js_fp32_gemm_ratio`,
        `int8 GEMM u8×s8 ${shape} vs our JS fp32 GEMM (packed 4×4 tiles)`,
        o,
        t,
        gop,
      );
    }
    for (const s of [nodeU8, nodeS8, web, nodeU8All]) await s?.release();
  }
}

async function benchGemv(r: Recorder, quick: boolean, threads: number): Promise<void> {
  const side = quick ? 512 : 4096;
  const [K, N] = [side, side];
  const budget = quick ? 40 : 1500;
  const x = floatsRandom(K, 5, -1, 1);
  const gop = { unit: 'GOP/s' as const, amount: 2 * K * N };
  const bs = 32;
  const kBlocks = K / bs;
  const q4: NBitsGemvWeights = {
    K,
    N,
    blockSize: bs,
    packed: bytesRandom((N * K) / 2, 6),
    scales: floatsRandom(N * kBlocks, 7, 0.001, 0.01),
  };
  const ours = () => gemvNBits(x, 1, q4);
  for (const level of [0, 4] as const) {
    r.step(`4-bit GEMV K=N=${side} vs MatMulNBits accuracy level ${level}`);
    const node = await nodeSession(matMulNBitsModel(q4, level));
    const nodeFeeds = { a: new ortNode.Tensor('float32', x, [1, K]) };
    let [o, t] = await sideBySide(ours, () => node.run(nodeFeeds), budget);
    await node.release();
    r.add(
      `gemv_q4_k${side}_vs_ort_node_matmulnbits_level${level}_ratio`,
      `4-bit GEMV K=N=${side} block ${bs}, batch 1, vs onnxruntime-node MatMulNBits accuracy_level ${level} (1 thread)`,
      o,
      t,
      gop,
    );
    const web = await webSession(matMulNBitsModel(q4, level));
    const webFeeds = { a: new ortWeb.Tensor('float32', x, [1, K]) };
    [o, t] = await sideBySide(ours, () => web.run(webFeeds), budget);
    await web.release();
    r.add(
      `gemv_q4_k${side}_vs_ort_web_matmulnbits_level${level}_ratio`,
      `4-bit GEMV K=N=${side} block ${bs}, batch 1, vs onnxruntime-web MatMulNBits accuracy_level ${level}`,
      o,
      t,
      gop,
    );
    if (threads > 1 && level === 0) {
      const nodeT = await nodeSession(matMulNBitsModel(q4, level), threads);
      await threadedRows(
        r,
        threads,
        `gemv_q4_k${side}`,
        `ort_node_matmulnbits_level${level}`,
        `4-bit GEMV K=N=${side} block ${bs}, batch 1`,
        { ours1: ours, oursT: () => gemvNBits(x, 1, q4, { threads }), theirsT: () => nodeT.run(nodeFeeds) },
        budget,
        gop,
      );
      await nodeT.release();
    }
  }
  const nf4: Bnb4GemvWeights = {
    K,
    N,
    blockSize: 64,
    packed: bytesRandom((N * K) / 2, 8),
    absmax: floatsRandom((N * K) / 64, 9, 0.01, 0.1),
    table: NF4_TABLE,
  };
  const oursNf4 = () => gemvBnb4(x, 1, nf4);
  r.step(`NF4 GEMV K=N=${side} vs MatMulBnb4`);
  const node = await nodeSession(matMulBnb4Model(nf4, 1));
  const nodeFeeds = { a: new ortNode.Tensor('float32', x, [1, K]) };
  let [o, t] = await sideBySide(oursNf4, () => node.run(nodeFeeds), budget);
  await node.release();
  r.add(
    `gemv_nf4_k${side}_vs_ort_node_matmulbnb4_ratio`,
    `NF4 GEMV K=N=${side} block 64, batch 1, vs onnxruntime-node MatMulBnb4 (1 thread)`,
    o,
    t,
    gop,
  );
  const web = await webSession(matMulBnb4Model(nf4, 1));
  const webFeeds = { a: new ortWeb.Tensor('float32', x, [1, K]) };
  [o, t] = await sideBySide(oursNf4, () => web.run(webFeeds), budget);
  await web.release();
  r.add(
    `gemv_nf4_k${side}_vs_ort_web_matmulbnb4_ratio`,
    `NF4 GEMV K=N=${side} block 64, batch 1, vs onnxruntime-web MatMulBnb4`,
    o,
    t,
    gop,
  );
  if (threads > 1) {
    const nodeT = await nodeSession(matMulBnb4Model(nf4, 1), threads);
    await threadedRows(
      r,
      threads,
      `gemv_nf4_k${side}`,
      'ort_node_matmulbnb4',
      `NF4 GEMV K=N=${side} block 64, batch 1`,
      { ours1: oursNf4, oursT: () => gemvBnb4(x, 1, nf4, { threads }), theirsT: () => nodeT.run(nodeFeeds) },
      budget,
      gop,
    );
    await nodeT.release();
  }
  // fp32 for scale: our 4-bit GEMV against ORT's own fp32 MatMul of the same shape.
  const w32 = floatsRandom(K * N, 10, -0.05, 0.05);
  const f32 = await nodeSession(matMulF32Model(w32, K, N));
  [o, t] = await sideBySide(ours, () => f32.run(nodeFeeds), budget);
  await f32.release();
  r.add(
    `gemv_q4_k${side}_vs_ort_node_fp32_matmul_ratio`,
    `4-bit GEMV K=N=${side}, batch 1, vs onnxruntime-node fp32 MatMul (1 thread)`,
    o,
    t,
    gop,
  );
}

/** ConvInteger on a ResNet-like layer: 64 → 64 channels, 3×3, pad 1, 56×56, batch 1 (u8×u8). */
async function benchConv(r: Recorder, quick: boolean, checks: Record<string, boolean>, threads: number): Promise<void> {
  const [c, hw] = quick ? [16, 14] : [64, 56];
  const xDims = [1, c, hw, hw];
  const wDims = [c, c, 3, 3];
  const p: ConvInt8Problem = {
    x: bytesRandom(c * hw * hw, 11),
    xDims,
    xZero: 119,
    w: bytesRandom(c * c * 9, 12),
    wDims,
    wZero: 131,
    pads: [1, 1, 1, 1],
  };
  const prepared = prepareConvInt8Weights(p.w, wDims, p.wZero);
  const what = `int8 conv ${c}→${c} 3×3 pad 1 on ${hw}×${hw}, batch 1`;
  const base = `conv_int8_c${c}_${hw}x${hw}`;
  const gop = { unit: 'GOP/s' as const, amount: 2 * c * c * 9 * hw * hw };
  const budget = quick ? 40 : 1500;
  const model = convIntegerModel(xDims, p.w as Uint8Array, wDims, 1, p.xZero, p.wZero as number);
  const ours = () => convInt8(p, prepared);
  r.step(what);
  const node = await nodeSession(model);
  const feeds = { x: new ortNode.Tensor('uint8', p.x, xDims) };
  const theirs = (await node.run(feeds)) as Record<string, { data: Int32Array }>;
  checks[`${base}_bit_exact_vs_ort_node`] =
    Buffer.compare(Buffer.from(ours().buffer), Buffer.from((theirs['y'] as { data: Int32Array }).data.buffer)) === 0;
  let [o, t] = await sideBySide(ours, () => node.run(feeds), budget);
  await node.release();
  r.add(`${base}_vs_ort_node_convinteger_ratio`, `${what} vs onnxruntime-node ConvInteger u8×u8 (1 thread)`, o, t, gop);
  const web = await webSession(model);
  const webFeeds = { x: new ortWeb.Tensor('uint8', p.x, xDims) };
  [o, t] = await sideBySide(ours, () => web.run(webFeeds), budget);
  await web.release();
  r.add(`${base}_vs_ort_web_convinteger_ratio`, `${what} vs onnxruntime-web ConvInteger u8×u8`, o, t, gop);
  if (threads > 1) {
    const nodeT = await nodeSession(model, threads);
    await threadedRows(
      r,
      threads,
      base,
      'ort_node_convinteger',
      what,
      { ours1: ours, oursT: () => convInt8(p, prepared, { threads }), theirsT: () => nodeT.run(feeds) },
      budget,
      gop,
    );
    await nodeT.release();
  }
}

/** ORT latency of our quantized shipped models vs their fp32 originals (fp32 time / quantized time). */
async function benchModels(r: Recorder, quick: boolean, notes: string[]): Promise<void> {
  const read = (f: string) => readFileSync(join(SHIPPED_MODELS_DIR, f));
  const cnn = read('cnn.onnx');
  const lm = read('lm.onnx');
  const fresh = (bytes: Uint8Array) => modelFromProto(decodeModel(bytes));
  const cnnX = readNpy(read('cnn-test-x.npy')).data as Float32Array;
  const ids = readNpy(read('lm-eval.npy'));
  const idsData = ids.data as BigInt64Array;
  const window = ids.dims[1] as number;
  const lmTokens = (tokens: number) => (batch: number) => {
    const out = new BigInt64Array(batch * tokens);
    for (let i = 0; i < batch; i++) out.set(idsData.subarray(i * window, i * window + tokens), i * tokens);
    return { input_ids: new ortNode.Tensor('int64', out, [batch, tokens]) };
  };
  const lmFeeds = lmTokens(64);
  const cnnFeeds = (batch: number) => ({
    input: new ortNode.Tensor('float32', cnnX.subarray(0, batch * 64), [batch, 1, 8, 8]),
  });
  const staticCnn = fresh(cnn);
  await quantizeStatic(staticCnn, new Map([['input', readNpy(read('cnn-calib-x.npy'))]]), {
    method: parseCalibMethod('minmax'),
  });
  // The forms that run faster in ONNX Runtime (README "Speed of the models we write"): the CNN with
  // its 1-channel conv kept fp32, and MatMulNBits at accuracy level 4 decoding one token.
  const fastCnn = fresh(cnn);
  await quantizeStatic(fastCnn, new Map([['input', readNpy(read('cnn-calib-x.npy'))]]), {
    method: parseCalibMethod('minmax'),
    minConvReduction: FAST_MIN_CONV_REDUCTION,
  });
  const dynLm = fresh(lm);
  foldBatchNorm(dynLm);
  quantizeDynamic(dynLm, {});
  const cases = [
    {
      key: 'cnn_int8_static',
      label: 'CNN int8-static (QDQ, minmax)',
      fp32: cnn,
      q: encodeModel(modelToProto(staticCnn)),
      feeds: cnnFeeds,
    },
    {
      key: 'lm_q4',
      label: 'LM q4 (MatMulNBits)',
      fp32: lm,
      q: quantizeModelBytes(lm, { scheme: 'q4' }).bytes,
      feeds: lmFeeds,
    },
    { key: 'lm_int8_dynamic', label: 'LM int8-dynamic', fp32: lm, q: encodeModel(modelToProto(dynLm)), feeds: lmFeeds },
    {
      key: 'cnn_int8_static_min_conv_reduction',
      label: `CNN int8-static, min conv reduction ${FAST_MIN_CONV_REDUCTION}`,
      fp32: cnn,
      q: encodeModel(modelToProto(fastCnn)),
      feeds: cnnFeeds,
    },
    {
      key: 'lm_q4_level4_one_token',
      label: 'LM q4 accuracy level 4, one token',
      fp32: lm,
      q: quantizeModelBytes(lm, { scheme: 'q4', accuracyLevel: 4 }).bytes,
      feeds: lmTokens(1),
    },
  ];
  for (const c of cases)
    for (const batch of quick ? [1] : [1, 32]) {
      r.step(`${c.label} batch ${batch}`);
      const a = await nodeSession(c.q);
      const b = await nodeSession(c.fp32);
      const feeds = c.feeds(batch);
      const [o, t] = await sideBySide(
        () => a.run(feeds),
        () => b.run(feeds),
        quick ? 40 : 1500,
        5,
      );
      await a.release();
      await b.release();
      r.add(`${c.key}_b${batch}_vs_fp32_ratio`, `ORT latency, ${c.label}, batch ${batch}, vs fp32 (1 thread)`, o, t);
    }
  notes.push('model latency: ratio = fp32 time / quantized time in onnxruntime-node (above 1: quantized faster)');
}

/**
 * Runs every kernel on small inputs for a while, then idles, so V8 has compiled the WebAssembly
 * with its optimizing tier before anything is timed: its compile threads count in the process
 * CPU time, and would otherwise land on whichever side happened to be running.
 */
async function warmUp(threads: number): Promise<void> {
  const x = floatsRandom(16384, 3, -1, 1);
  const scale = Float32Array.of(0.01);
  const cols = floatsRandom(64, 4, 0.01, 0.02);
  const b = new Int8Array(bytesRandom(256 * 64, 5).buffer);
  const packed = packGemmInt8B(b, 0, 256, 64);
  const a = bytesRandom(8 * 256, 6);
  // 64 columns: enough for the threaded GEMV to cut them into parts (it keeps 16 on one thread).
  const q4: NBitsGemvWeights = {
    K: 256,
    N: 64,
    blockSize: 32,
    packed: bytesRandom(64 * 128, 7),
    scales: floatsRandom(64 * 8, 8, 0.01, 0.02),
  };
  const nf4: Bnb4GemvWeights = {
    K: 256,
    N: 64,
    blockSize: 64,
    packed: bytesRandom(64 * 128, 9),
    absmax: floatsRandom(256, 10, 0.1, 1),
    table: NF4_TABLE,
  };
  const big = floatsRandom(1 << 18, 11, -1, 1);
  const start = performance.now();
  while (performance.now() - start < (threads > 1 ? 800 : 400)) {
    quantizeLinearInt8(x, { scale, signed: true, inner: x.length });
    quantizeLinearInt8(x, { scale: cols, signed: false, zeroPoint: new Uint8Array(64).fill(128), inner: 1 });
    gemmInt8Prepacked(a, 128, packed, 8);
    gemmInt8Prepacked(a.subarray(0, 256), 128, packed, 1);
    gemvNBits(x.subarray(0, 256), 1, q4);
    gemvBnb4(x.subarray(0, 256), 1, nf4);
    // The threads' shared-memory build is compiled (and tiered up) on its own.
    if (threads > 1) {
      quantizeLinearInt8(big, { scale, signed: true, inner: big.length }, undefined, { threads });
      gemmInt8Prepacked(a, 128, packed, 8, { threads });
      gemvNBits(x.subarray(0, 256), 1, q4, { threads });
      gemvBnb4(x.subarray(0, 256), 1, nf4, { threads });
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
}

export async function runBench(o: BenchOptions = {}): Promise<BenchReport> {
  const quick = o.quick ?? false;
  const r = new Recorder(o.onStep);
  const checks: Record<string, boolean> = {};
  const threads = o.threads ?? cpus().length;
  const notes: string[] = [
    `one thread on both sides unless a row says "${threads} threads" (ours and ORT-node's intra-op threads alike)`,
    'timings interleaved (ours, theirs, ours, …), lower quartiles compared; single-thread rows time process CPU time (steady on a shared machine), all-thread rows wall-clock time',
  ];
  if (!computeWasmAvailable() || kernelPath() === 'js') notes.push('our kernels ran on the JavaScript path');
  const on = (g: BenchGroup) => !o.only || o.only.includes(g);
  if (threads > 1) {
    setKernelWorkerHost(nodeKernelWorkerHost());
    const up = await kernelThreadsReady(threads);
    if (up < threads) notes.push(`only ${up} of ${threads} kernel threads started`);
  }
  try {
    await warmUp(threads);
    if (on('quantize')) await benchQuantize(r, quick, checks, threads);
    if (on('gemm')) await benchGemm(r, quick, threads);
    if (on('gemv')) await benchGemv(r, quick, threads);
    if (on('conv')) await benchConv(r, quick, checks, threads);
    if (on('models')) await benchModels(r, quick, notes);
  } finally {
    if (threads > 1) stopKernelThreads();
  }
  return {
    quick,
    kernels: computeWasmAvailable() && kernelPath() === 'auto' ? 'wasm-simd' : 'js',
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    ortNodeVersion: ortNode.env.versions.common,
    figures: r.figures,
    checks,
    rows: r.rows,
    notes,
  };
}

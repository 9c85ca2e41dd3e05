import { computeWasmBase64 } from './compute-wasm.generated.js';
import type { Int8Codes } from './gemm-int8.ref.js';
import {
  BNB4_STEP,
  GEMV_STEP,
  NBITS_STEP,
  type Bnb4GemvWeights,
  type NBitsGemvWeights,
  type StepOrder,
} from './gemv-4bit.ref.js';
import { lazyWasmExports } from './wasm-instance.js';

/*
 * Driver of the WebAssembly SIMD compute kernels (compute.wat): it owns the module's one memory
 * (a first-fit allocator over it), stages inputs in, and reads results out. Weights (a packed
 * GEMM B, a 4-bit or NF4 GEMV weight) are copied in once, into a handle whose memory is returned
 * when the handle is garbage-collected. Every function here returns undefined where WebAssembly
 * SIMD is missing; index.ts then takes the JavaScript path.
 */

/** The kernel module's exports; compute-shared (its shared-memory build) has the same. */
export interface ComputeExports {
  readonly memory: WebAssembly.Memory;
  readonly quantizeRun: (
    src: number,
    dst: number,
    n: number,
    scale: number,
    lo: number,
    hi: number,
    zp: number,
    flip: number,
  ) => number;
  readonly quantizeColumns: (src: number, dst: number, rows: number, c: number, p: number, flip: number) => number;
  readonly dequantizeRun: (src: number, dst: number, n: number, scale: number, zp: number, flip: number) => void;
  readonly gemmS8: (a: number, b: number, c: number, m: number, k16: number, n4: number) => void;
  readonly packAWide: (src: number, dst: number, sums: number, m: number, k: number, k2: number, flip: number) => void;
  readonly fixUp: (
    c: number,
    ldc: number,
    m: number,
    n: number,
    rowSums: number,
    zero: number,
    colTerm: number,
  ) => void;
  readonly gemmS8Wide: (
    a: number,
    aStride: number,
    b: number,
    bStride: number,
    c: number,
    ldc: number,
    m: number,
    pairs: number,
    cols: number,
    add: number,
  ) => void;
  readonly gemvNBits: (
    x: number,
    w: number,
    s: number,
    z: number,
    y: number,
    n: number,
    kBlocks: number,
    steps: number,
  ) => void;
  readonly gemvNBitsSym: ComputeExports['gemvNBits'];
  readonly gemvBnb4: (
    x: number,
    w: number,
    s: number,
    planes: number,
    y: number,
    n: number,
    kBlocks: number,
    steps: number,
  ) => void;
}

const kernel = lazyWasmExports<ComputeExports>(computeWasmBase64);

/** A kernel and its arguments, for a ParallelCalls runner: exports[name](...args). */
export type KernelCall = readonly [name: KernelName, ...args: number[]];
export type KernelName = Exclude<keyof ComputeExports, 'memory'>;

/** Runs lists of kernel calls spread over threads that share one memory (threads.ts). */
export interface ParallelCalls {
  readonly threads: number;
  /**
   * Runs every part once (a part's calls in order, on one thread; parts in any order, on any
   * thread) and returns the bitwise or of the calls' results (0 for those that return nothing).
   */
  run(parts: readonly (readonly KernelCall[])[]): number;
}

/**
 * Where the kernels run: an instance, the allocator over its memory and, for the shared-memory
 * build, the runner that spreads independent calls over threads. Handles (a packed B, a GEMV
 * weight) live in one context's memory and are used with that context only.
 */
export interface ComputeContext {
  readonly k: ComputeExports;
  readonly arena: Arena;
  readonly parallel?: ParallelCalls | undefined;
}

/** True where the WebAssembly SIMD kernels can run. */
export function computeWasmAvailable(): boolean {
  return kernel() !== null;
}

/** First-fit allocation over the module's memory, 16-byte aligned; grows the memory when full. */
export class Arena {
  private readonly free: { at: number; size: number }[] = [];
  private end: number;

  /** `start`: the bytes below it stay unused (at least 256, so no region starts at 0). */
  constructor(
    private readonly memory: WebAssembly.Memory,
    start = 256,
  ) {
    this.end = (Math.max(256, start) + 15) & ~15;
  }

  alloc(bytes: number): number {
    const size = Math.max(16, (bytes + 15) & ~15);
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i] as { at: number; size: number };
      if (f.size >= size) {
        const at = f.at;
        if (f.size === size) this.free.splice(i, 1);
        else {
          f.at += size;
          f.size -= size;
        }
        return at;
      }
    }
    const at = this.end;
    const need = at + size - this.memory.buffer.byteLength;
    if (need > 0) this.memory.grow(Math.ceil(need / 65536));
    this.end = at + size;
    return at;
  }

  release(at: number, bytes: number): void {
    const size = Math.max(16, (bytes + 15) & ~15);
    let i = 0;
    while (i < this.free.length && (this.free[i] as { at: number }).at < at) i++;
    this.free.splice(i, 0, { at, size });
    // Merge with the neighbours, and give the tail back to `end`.
    const next = this.free[i + 1];
    if (next && at + size === next.at) {
      (this.free[i] as { size: number }).size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.at + prev.size === at) {
      prev.size += (this.free[i] as { size: number }).size;
      this.free.splice(i, 1);
    }
    const last = this.free[this.free.length - 1];
    if (last && last.at + last.size === this.end) {
      this.end = last.at;
      this.free.pop();
    }
  }
}

let single: ComputeContext | undefined;
/** `ctx`, or the single-threaded instance (undefined where WebAssembly SIMD is missing). */
function ready(ctx?: ComputeContext): ComputeContext | undefined {
  if (ctx) return ctx;
  const k = kernel();
  if (!k) return undefined;
  single ??= { k, arena: new Arena(k.memory) };
  return single;
}

/** Regions a handle holds, returned to their arena when the handle is collected. */
const regions = new FinalizationRegistry<{ arena: Arena; list: [number, number][] }>(({ arena, list }) => {
  for (const [at, bytes] of list) arena.release(at, bytes);
});

/** Runs `f` with scratch regions of the given sizes, released afterwards. */
function withScratch<T>(a: Arena, sizes: readonly number[], f: (...at: number[]) => T): T {
  const at = sizes.map((s) => a.alloc(s));
  try {
    return f(...at);
  } finally {
    for (let i = at.length - 1; i >= 0; i--) a.release(at[i] as number, sizes[i] as number);
  }
}

// ------------------------------------------------------------------------------------------------
// 8-bit quantize / dequantize

/** Floats staged per kernel call: 64 KiB in, 16 KiB out, both in L2 while the kernel runs. */
const CHUNK = 16384;

export interface WasmQuantParams {
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array | undefined;
  readonly signed: boolean;
  readonly inner: number;
}

/** Where the clamps and rounding constant of a quantize come from: the codes' type and a zero point. */
function quantLimits(p: WasmQuantParams, ch: number): [lo: number, hi: number, shift: number, flip: number] {
  const z = p.zeroPoint ? (p.zeroPoint[ch] as number) : 0;
  return p.signed ? [-128 - z, 127 - z, z, 0] : [0 - z, 255 - z, z - 128, 0x80];
}

/** quantizeColumns' table at `at`: C scales, lower clamps, upper clamps and rounding constants. */
function writeColumnParams(mem: ArrayBuffer, at: number, p: WasmQuantParams): void {
  const c = p.scale.length;
  const f32 = new Float32Array(mem);
  const i32 = new Int32Array(mem);
  const pf = at / 4;
  for (let j = 0; j < c; j++) {
    const [lo, hi, shift] = quantLimits(p, j);
    f32[pf + j] = p.scale[j] as number;
    f32[pf + c + j] = lo;
    f32[pf + 2 * c + j] = hi;
    i32[pf + 3 * c + j] = 0x4b400000 - shift;
  }
}

/**
 * The runs of one channel among elements [from, to) of x as [outer, C, inner] (n elements), each
 * with quantizeRun's arguments after its addresses: count, scale, clamps, zero point, flip.
 */
function* channelRuns(from: number, to: number, n: number, p: WasmQuantParams) {
  const c = p.scale.length;
  const run = c === 1 ? n : p.inner;
  for (let s = from; s < to;) {
    const e = Math.min(to, (Math.floor(s / run) + 1) * run);
    const ch = Math.floor(s / run) % c;
    const [lo, hi, shift, flip] = quantLimits(p, ch);
    yield { s, args: [e - s, p.scale[ch] as number, lo, hi, shift, flip] as const };
    s = e;
  }
}

/**
 * QuantizeLinear into `out` (x as [outer, C, inner], C = scale.length). Returns false where the
 * kernel cannot run or met a NaN/±Inf (the caller then runs the reference), true when done.
 */
export function quantizeWasm(
  x: Float32Array,
  p: WasmQuantParams,
  out: Int8Array | Uint8Array,
  ctx?: ComputeContext,
): boolean {
  const r = ready(ctx);
  if (!r) return false;
  if (r.parallel) return quantizeParallel(r, r.parallel, x, p, out);
  const { k, arena } = r;
  const c = p.scale.length;
  const flip = p.signed ? 0 : 0x80;
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.length);
  const n = x.length;
  if (c > 1 && p.inner === 1) {
    const rowsPer = Math.max(1, Math.floor(CHUNK / c));
    const chunk = rowsPer * c;
    return withScratch(arena, [chunk * 4, chunk, c * 16], (inAt, outAt, pAt) => {
      const mem = k.memory.buffer;
      const f32 = new Float32Array(mem);
      const u8 = new Uint8Array(mem);
      writeColumnParams(mem, pAt as number, p);
      let bad = 0;
      for (let i = 0; i < n; i += chunk) {
        const len = Math.min(chunk, n - i);
        f32.set(x.subarray(i, i + len), (inAt as number) / 4);
        bad |= k.quantizeColumns(inAt as number, outAt as number, len / c, c, pAt as number, flip);
        if (bad) return false;
        outBytes.set(u8.subarray(outAt as number, (outAt as number) + len), i);
      }
      return true;
    });
  }
  return withScratch(arena, [CHUNK * 4, CHUNK], (inAt, outAt) => {
    const mem = k.memory.buffer;
    const f32 = new Float32Array(mem);
    const u8 = new Uint8Array(mem);
    for (let i = 0; i < n; i += CHUNK) {
      const len = Math.min(CHUNK, n - i);
      f32.set(x.subarray(i, i + len), (inAt as number) / 4);
      for (const { s, args } of channelRuns(i, i + len, n, p))
        if (k.quantizeRun((inAt as number) + (s - i) * 4, (outAt as number) + (s - i), ...args)) return false;
      outBytes.set(u8.subarray(outAt as number, (outAt as number) + len), i);
    }
    return true;
  });
}

/** Elements staged per round of the threaded quantize (1 MiB of floats, kept in L2), and per part. */
const ROUND = 1 << 18;
const PART = 1 << 15;

/**
 * quantizeWasm over threads: a round of x staged in the shared memory, its parts (runs of one
 * channel, or whole rows of the per-column form) quantized by whichever thread is free.
 */
function quantizeParallel(
  r: ComputeContext,
  par: ParallelCalls,
  x: Float32Array,
  p: WasmQuantParams,
  out: Int8Array | Uint8Array,
): boolean {
  const { k, arena } = r;
  const c = p.scale.length;
  const flip = p.signed ? 0 : 0x80;
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.length);
  const n = x.length;
  const columns = c > 1 && p.inner === 1;
  const round = columns ? Math.max(1, Math.floor(ROUND / c)) * c : ROUND;
  const part = columns ? Math.max(1, Math.floor(PART / c)) * c : PART;
  const staged = Math.min(round, n);
  return withScratch(arena, [staged * 4, staged, columns ? c * 16 : 16], (inAt, outAt, pAt) => {
    if (columns) writeColumnParams(k.memory.buffer, pAt as number, p);
    for (let i = 0; i < n; i += round) {
      const len = Math.min(round, n - i);
      new Float32Array(k.memory.buffer).set(x.subarray(i, i + len), (inAt as number) / 4);
      const parts: KernelCall[][] = [];
      for (let s0 = 0; s0 < len; s0 += part) {
        const e0 = Math.min(len, s0 + part);
        const at = (inAt as number) + s0 * 4;
        const to = (outAt as number) + s0;
        if (columns) {
          parts.push([['quantizeColumns', at, to, (e0 - s0) / c, c, pAt as number, flip]]);
          continue;
        }
        const calls: KernelCall[] = [];
        for (const { s, args } of channelRuns(i + s0, i + e0, n, p))
          calls.push(['quantizeRun', (inAt as number) + (s - i) * 4, (outAt as number) + (s - i), ...args]);
        parts.push(calls);
      }
      if (par.run(parts)) return false;
      outBytes.set(new Uint8Array(k.memory.buffer, outAt as number, len), i);
    }
    return true;
  });
}

/** A region of the kernels' memory that a caller fills and reads (kernels/index.ts wraps it). */
export interface KernelRegion {
  readonly at: number;
  readonly bytes: number;
}

/** Holds `bytes` of the kernels' memory (undefined where the kernels cannot run), until released or collected. */
export function allocKernelRegion(bytes: number, owner: object): KernelRegion | undefined {
  const r = ready();
  if (!r) return undefined;
  const region = { at: r.arena.alloc(bytes), bytes };
  regions.register(owner, { arena: r.arena, list: [[region.at, bytes]] }, owner);
  return region;
}

export function releaseKernelRegion(region: KernelRegion, owner: object): void {
  regions.unregister(owner);
  single?.arena.release(region.at, region.bytes);
}

/** The kernels' memory now (a view made earlier is detached once the memory grows). */
export function kernelMemory(): ArrayBuffer {
  const r = ready();
  if (!r) throw new Error('kernel memory used where the WebAssembly kernels cannot run');
  return r.k.memory.buffer;
}

/** Floats staged per kernel call in place: 16 KiB, which stay in L1 (1.05× over 64 KiB chunks). */
const RESIDENT_CHUNK = 4096;

/**
 * QuantizeLinear of n floats at `xAt` (in the kernels' memory) to codes at `outAt`, both already
 * there: chunks are staged by copyWithin (a memmove, which streams from memory faster than the
 * kernel's own loads do) into a scratch region that stays in L1, and the kernel writes the codes
 * in place. Same contract as quantizeWasm: false where it met a NaN/±Inf (nothing else to undo).
 */
export function quantizeResidentWasm(xAt: number, n: number, p: WasmQuantParams, outAt: number): boolean {
  const r = ready();
  if (!r) return false;
  const { k, arena } = r;
  const c = p.scale.length;
  const flip = p.signed ? 0 : 0x80;
  if (c > 1 && p.inner === 1) {
    const rowsPer = Math.max(1, Math.floor(RESIDENT_CHUNK / c));
    const chunk = rowsPer * c;
    return withScratch(arena, [chunk * 4, c * 16], (inAt, pAt) => {
      const f32 = new Float32Array(k.memory.buffer);
      writeColumnParams(k.memory.buffer, pAt as number, p);
      for (let i = 0; i < n; i += chunk) {
        const len = Math.min(chunk, n - i);
        f32.copyWithin((inAt as number) / 4, xAt / 4 + i, xAt / 4 + i + len);
        if (k.quantizeColumns(inAt as number, outAt + i, len / c, c, pAt as number, flip)) return false;
      }
      return true;
    });
  }
  return withScratch(arena, [RESIDENT_CHUNK * 4], (inAt) => {
    const f32 = new Float32Array(k.memory.buffer);
    for (let i = 0; i < n; i += RESIDENT_CHUNK) {
      const len = Math.min(RESIDENT_CHUNK, n - i);
      f32.copyWithin((inAt as number) / 4, xAt / 4 + i, xAt / 4 + i + len);
      for (const { s, args } of channelRuns(i, i + len, n, p))
        if (k.quantizeRun((inAt as number) + (s - i) * 4, outAt + s, ...args)) return false;
    }
    return true;
  });
}

/** DequantizeLinear into `out` for per-tensor or per-channel runs (inner > 1); false: not run. */
export function dequantizeWasm(q: Int8Array | Uint8Array, p: WasmQuantParams, out: Float32Array): boolean {
  const r = ready();
  const c = p.scale.length;
  if (!r || (c > 1 && p.inner === 1)) return false;
  const { k, arena } = r;
  const flip = p.signed ? 0 : 0x80;
  const bytes = new Uint8Array(q.buffer, q.byteOffset, q.length);
  const n = q.length;
  const run = c === 1 ? n : p.inner;
  withScratch(arena, [CHUNK, CHUNK * 4], (inAt, outAt) => {
    const mem = k.memory.buffer;
    const f32 = new Float32Array(mem);
    const u8 = new Uint8Array(mem);
    for (let i = 0; i < n; i += CHUNK) {
      const len = Math.min(CHUNK, n - i);
      u8.set(bytes.subarray(i, i + len), inAt as number);
      for (let s = i; s < i + len;) {
        const e = Math.min(i + len, (Math.floor(s / run) + 1) * run);
        const ch = Math.floor(s / run) % c;
        const z = p.zeroPoint ? (p.zeroPoint[ch] as number) : 0;
        k.dequantizeRun(
          (inAt as number) + (s - i),
          (outAt as number) + (s - i) * 4,
          e - s,
          p.scale[ch] as number,
          z - (flip ? 128 : 0),
          flip,
        );
        s = e;
      }
      out.set(f32.subarray((outAt as number) / 4, (outAt as number) / 4 + len), i);
    }
  });
  return true;
}

// ------------------------------------------------------------------------------------------------
// int8 GEMM

/**
 * B in the kernel's memory, in the form each kernel reads, made on first use: `narrow` int8
 * panels [N4/4][K16/16][4][16] for M < 4 (half the bytes: GEMV is bound by reading B), `wide`
 * int16 [N8/8][K2][8][2] for the broadcast kernel (M ≥ 4). Codes are int8 (uint8 − 128).
 */
export interface WasmGemmB {
  readonly k: number;
  readonly n: number;
  readonly src: Int8Codes;
  /** Σ_k b' of every column, b' the int8 code (uint8 − 128). */
  readonly colSums: Int32Array;
  /** The zero point of every column in b' terms. */
  readonly zero: Int32Array;
  narrowAt?: number | undefined;
  wideAt?: number | undefined;
  /** The arena the packed forms were taken from. */
  arena?: Arena | undefined;
  /** The regions the packed forms hold, returned by releaseGemmBWasm or when B is collected. */
  readonly held: [number, number][];
}

/** Bytes of an 8-bit code array, and the xor that makes them int8 (0x80 for uint8). */
function bytesOf(codes: Int8Codes): [Uint8Array, number] {
  return [new Uint8Array(codes.buffer, codes.byteOffset, codes.length), codes instanceof Uint8Array ? 0x80 : 0];
}

const pad16 = (k: number) => Math.max(16, (k + 15) & ~15);
const pad4 = (n: number) => Math.max(4, (n + 3) & ~3);
const pad8 = (n: number) => Math.max(8, (n + 7) & ~7);
/** K in int16 pairs, rounded up to even (the wide kernel takes two pairs a turn). */
const pairs = (k: number) => Math.max(2, ((k + 3) >> 2) << 1);

/** Takes B [K, N] (row-major codes) and its zero point(s); the packed forms come on first use. */
export function packGemmBWasm(
  b: Int8Codes,
  k: number,
  n: number,
  bZero: number | ArrayLike<number>,
  ctx?: ComputeContext,
): WasmGemmB | undefined {
  if (!ready(ctx)) return undefined;
  const [src, flip] = bytesOf(b);
  const colSums = new Int32Array(n);
  for (let t = 0; t < k; t++)
    for (let j = 0, row = t * n; j < n; j++)
      colSums[j] = (colSums[j] as number) + ((((src[row + j] as number) ^ flip) << 24) >> 24);
  const zero = new Int32Array(n);
  for (let j = 0; j < n; j++) zero[j] = (typeof bZero === 'number' ? bZero : (bZero[j] as number)) - (flip ? 128 : 0);
  return { k, n, src: b, colSums, zero, held: [] };
}

function narrowB(a: Arena, mem: WebAssembly.Memory, b: WasmGemmB): number {
  if (b.narrowAt !== undefined) return b.narrowAt;
  const { k, n } = b;
  const k16 = pad16(k);
  const bytes = pad4(n) * k16;
  const at = a.alloc(bytes);
  const [src, flip] = bytesOf(b.src);
  const dst = new Uint8Array(mem.buffer, at, bytes);
  dst.fill(0);
  for (let t = 0; t < k; t++) {
    const row = t * n;
    const tOff = (t >> 4) * 64 + (t & 15);
    for (let j = 0; j < n; j++) dst[(j >> 2) * k16 * 4 + tOff + (j & 3) * 16] = (src[row + j] as number) ^ flip;
  }
  b.held.push([at, bytes]);
  b.arena = a;
  regions.register(b, { arena: a, list: [[at, bytes]] }, b);
  return (b.narrowAt = at);
}

function wideB(a: Arena, mem: WebAssembly.Memory, b: WasmGemmB): number {
  if (b.wideAt !== undefined) return b.wideAt;
  const { k, n } = b;
  const k2 = pairs(k);
  const bytes = pad8(n) * k2 * 4;
  const at = a.alloc(bytes);
  const [src, flip] = bytesOf(b.src);
  const dst = new Int16Array(mem.buffer, at, bytes / 2);
  dst.fill(0);
  for (let t = 0; t < k; t++) {
    const row = t * n;
    const tOff = (t >> 1) * 16 + (t & 1);
    for (let j = 0; j < n; j++)
      dst[(j >> 3) * k2 * 16 + tOff + (j & 7) * 2] = (((src[row + j] as number) ^ flip) << 24) >> 24;
  }
  b.held.push([at, bytes]);
  b.arena = a;
  regions.register(b, { arena: a, list: [[at, bytes]] }, b);
  return (b.wideAt = at);
}

/** The wide kernel's blocks: K pairs and columns per call. */
const KC_PAIRS = 256;
const NC = 256;

/** Returns B's packed forms to the arena now (a B used once), rather than when it is collected. */
export function releaseGemmBWasm(b: WasmGemmB): void {
  regions.unregister(b);
  for (const [at, bytes] of b.held.splice(0)) b.arena?.release(at, bytes);
  b.narrowAt = undefined;
  b.wideAt = undefined;
}

/** B's packed bytes above which a one-row product stages B's panels (assumed to come from memory). */
export const STAGE_B_ABOVE = 8 << 20;

/** A's rows per narrow-kernel call: a block of at most 128 KiB, so it stays in L2 across B's panels. */
function rowBlock(rowBytes: number): number {
  return Math.max(4, Math.floor(131072 / rowBytes) & ~3);
}

/** C [M, N] = MatMulInteger(A [M, K], B taken by packGemmBWasm), equal to gemmInt8Ref. */
export function gemmWasm(
  a: Int8Codes,
  aZero: number,
  b: WasmGemmB,
  m: number,
  ctx?: ComputeContext,
): Int32Array | undefined {
  const r = ready(ctx);
  if (!r) return undefined;
  const { k: kern, arena } = r;
  const { k, n, colSums, zero } = b;
  if (m === 0 || n === 0) return new Int32Array(m * n);
  const wide = m >= 4;
  const bAt = wide ? wideB(arena, kern.memory, b) : narrowB(arena, kern.memory, b);
  const [src, flip] = bytesOf(a);
  const za = aZero - (flip ? 128 : 0);
  // A: int16 in 4-row tiles for the wide kernel ([⌈M/4⌉][pairs][4][2]), int8 rows for the narrow one.
  const k2 = pairs(k);
  const k16 = pad16(k);
  const aBytes = wide ? ((m + 3) >> 2) * k2 * 16 : m * k16;
  const ldc = wide ? pad8(n) : pad4(n);
  // One row against a B too big to stay cached: its panels are staged, `group` at a time (below).
  const panel = 4 * k16;
  const stage = !wide && m === 1 && ldc * k16 > STAGE_B_ABOVE;
  const group = Math.max(1, Math.floor(16384 / panel));
  const sizes = [m * k, aBytes, m * 4, n * 4, n * 4, m * ldc * 4, stage ? group * panel : 0];
  return withScratch(arena, sizes, (rawAt, aAt, sumsAt, zeroAt, colAt, cAt, stageAt) => {
    const mem = kern.memory.buffer;
    const i32 = new Int32Array(mem);
    const u8 = new Uint8Array(mem);
    if (wide) {
      u8.set(src, rawAt as number);
      u8.fill(0, aAt as number, (aAt as number) + aBytes);
      kern.packAWide(rawAt as number, aAt as number, sumsAt as number, m, k, k2, flip);
      if (r.parallel) {
        r.parallel.run(wideParts(r.parallel.threads, aAt as number, bAt, cAt as number, m, k2, ldc));
        return fold();
      }
      // Blocks: KC_PAIRS of K (a tile's A, KC_PAIRS·16 bytes, stays in L1) by NC columns (their
      // panels, NC·KC_PAIRS·4 bytes, stay in L2 while every row tile passes over them).
      for (let k0 = 0; k0 < k2; k0 += KC_PAIRS)
        for (let n0 = 0; n0 < ldc; n0 += NC)
          kern.gemmS8Wide(
            (aAt as number) + k0 * 16,
            k2 * 16,
            bAt + (n0 / 8) * k2 * 32 + k0 * 32,
            k2 * 32,
            (cAt as number) + n0 * 4,
            ldc * 4,
            m,
            Math.min(KC_PAIRS, k2 - k0),
            Math.min(NC, ldc - n0),
            k0 > 0 ? 1 : 0,
          );
    } else {
      const a8 = new Int8Array(mem, aAt as number, aBytes);
      for (let i = 0; i < m; i++) {
        const d = i * k16;
        let sum = 0;
        for (let t = 0, s = i * k; t < k; t++, s++) {
          const v = (((src[s] as number) ^ flip) << 24) >> 24;
          a8[d + t] = v;
          sum += v;
        }
        a8.fill(0, d + k, d + k16);
        i32[(sumsAt as number) / 4 + i] = sum;
      }
      if (stage) {
        // B's panels come from memory, and a memmove (copyWithin) streams them faster than the
        // kernel's own loads, so each group of panels (≤ 16 KiB) is copied into a block that stays
        // in L1 and the kernel reads it there (1.25–1.3× from memory; on a cached B the copy would
        // cost 1.6×, hence the size gate).
        for (let p = 0; p < ldc / 4; p += group) {
          const g = Math.min(group, ldc / 4 - p);
          u8.copyWithin(stageAt as number, bAt + p * panel, bAt + (p + g) * panel);
          kern.gemmS8(aAt as number, stageAt as number, (cAt as number) + p * 16, 1, k16, 4 * g);
        }
      } else {
        const mc = rowBlock(k16);
        for (let i0 = 0; i0 < m; i0 += mc)
          kern.gemmS8((aAt as number) + i0 * k16, bAt, (cAt as number) + i0 * ldc * 4, Math.min(mc, m - i0), k16, ldc);
      }
    }
    return fold();
    // C = Σ a'b' − zb'·rowSum(A') − za'·colSum(B') + K·za'·zb', modulo 2^32.
    function fold(): Int32Array {
      const i32 = new Int32Array(kern.memory.buffer);
      i32.set(zero, (zeroAt as number) / 4);
      const kza = Math.imul(k, za);
      for (let j = 0, o = (colAt as number) / 4; j < n; j++)
        i32[o + j] = Math.imul(kza, zero[j] as number) - Math.imul(za, colSums[j] as number);
      kern.fixUp(cAt as number, ldc, m, n, sumsAt as number, zeroAt as number, colAt as number);
      return new Int32Array(i32.slice((cAt as number) / 4, (cAt as number) / 4 + m * n));
    }
  });
}

/**
 * The wide kernel's calls cut into tiles of C for threads: column blocks of NC, and row blocks
 * (whole 4-row tiles) when the columns alone give too few parts. A tile's K blocks stay in order on
 * one thread (the first writes C, the next add to it).
 */
function wideParts(threads: number, aAt: number, bAt: number, cAt: number, m: number, k2: number, ldc: number) {
  const colBlocks = Math.ceil(ldc / NC);
  const rowBlocks = Math.min(Math.ceil(m / 4), Math.max(1, Math.ceil((4 * threads) / colBlocks)));
  const rows = Math.ceil(m / rowBlocks / 4) * 4;
  const parts: KernelCall[][] = [];
  for (let i0 = 0; i0 < m; i0 += rows)
    for (let n0 = 0; n0 < ldc; n0 += NC) {
      const calls: KernelCall[] = [];
      for (let k0 = 0; k0 < k2; k0 += KC_PAIRS)
        calls.push([
          'gemmS8Wide',
          aAt + (i0 / 4) * k2 * 16 + k0 * 16,
          k2 * 16,
          bAt + (n0 / 8) * k2 * 32 + k0 * 32,
          k2 * 32,
          cAt + (i0 * ldc + n0) * 4,
          ldc * 4,
          Math.min(rows, m - i0),
          Math.min(KC_PAIRS, k2 - k0),
          Math.min(NC, ldc - n0),
          k0 > 0 ? 1 : 0,
        ]);
      parts.push(calls);
    }
  return parts;
}

// ------------------------------------------------------------------------------------------------
// 4-bit and NF4 GEMV

/** For every slot of the kernel's permuted x, the element of x it holds (−1: padding, 0). */
function stepPermutation(kp: number, order: StepOrder): Int32Array {
  const perm = new Int32Array(kp);
  for (let s = 0; s < kp; s += GEMV_STEP)
    for (let v = 0; v < 8; v++) for (let l = 0; l < 4; l++) perm[s + v * 4 + l] = s + order(v, l);
  return perm;
}

interface GemvHandle {
  readonly K: number;
  readonly N: number;
  readonly kp: number;
  readonly perm: Int32Array;
  readonly at: readonly number[];
}

function holdRegions(h: object, arena: Arena, list: [number, number][]): void {
  regions.register(h, { arena, list });
}

/** Calls exports[name](...args). */
function invoke(k: ComputeExports, [name, ...args]: KernelCall): number {
  return (k[name] as (...a: number[]) => number | undefined)(...args) ?? 0;
}

/** Columns per GEMV part: a multiple of 16, about four parts a thread (uneven threads even out). */
function columnParts(n: number, threads: number, part: (j0: number, cols: number) => KernelCall): KernelCall[][] {
  const cols = Math.max(16, Math.ceil(n / (4 * threads) / 16) * 16);
  const parts: KernelCall[][] = [];
  for (let j0 = 0; j0 < n; j0 += cols) parts.push([part(j0, Math.min(cols, n - j0))]);
  return parts;
}

/**
 * Runs one GEMV kernel per row of X: x permuted into place, y read back. `call` gives the kernel
 * call for columns [j0, j0 + cols); with threads, the columns are cut into parts (a column's sum
 * does not depend on which others share the call).
 */
function gemvRows(
  r: ComputeContext,
  h: GemvHandle,
  x: Float32Array,
  m: number,
  call: (xAt: number, yAt: number, j0: number, cols: number) => KernelCall,
): Float32Array {
  const { K, N, kp, perm } = h;
  const y = new Float32Array(m * N);
  const kern = r.k;
  withScratch(r.arena, [kp * 4, N * 4], (xAt, yAt) => {
    const f32 = new Float32Array(kern.memory.buffer);
    const xo = (xAt as number) / 4;
    for (let i = 0; i < m; i++) {
      const row = i * K;
      for (let s = 0; s < kp; s++) {
        const e = perm[s] as number;
        f32[xo + s] = e < K ? (x[row + e] as number) : 0;
      }
      if (r.parallel && N > 16)
        r.parallel.run(columnParts(N, r.parallel.threads, (j0, cols) => call(xAt as number, yAt as number, j0, cols)));
      else invoke(kern, call(xAt as number, yAt as number, 0, N));
      y.set(f32.subarray((yAt as number) / 4, (yAt as number) / 4 + N), i * N);
    }
  });
  return y;
}

export interface WasmNBits extends GemvHandle {
  readonly kBlocks: number;
  readonly steps: number;
  /** No zero points: codes stored xor 0x88 for gemvNBitsSym. */
  readonly symmetric: boolean;
}

/** Copies a MatMulNBits weight into the kernel's memory; undefined where the kernel cannot take it. */
export function prepareNBitsWasm(w: NBitsGemvWeights, ctx?: ComputeContext): WasmNBits | undefined {
  const r = ready(ctx);
  if (!r || w.blockSize < GEMV_STEP) return undefined;
  const { k: kern, arena } = r;
  const { K, N, blockSize: bs } = w;
  const kBlocks = Math.ceil(K / bs);
  const sizes: [number, number, number] = [w.packed.length, N * kBlocks * 4, N * kBlocks];
  const [wAt, sAt, zAt] = sizes.map((s) => arena.alloc(s)) as [number, number, number];
  const mem = kern.memory.buffer;
  const codes = new Uint8Array(mem, wAt, w.packed.length);
  codes.set(w.packed);
  new Float32Array(mem).set(w.scales, sAt / 4);
  const z = new Uint8Array(mem, zAt, N * kBlocks);
  const zp = w.zeroPoints;
  if (!zp) {
    // Without zero points every code is read as code − 8: stored xor 8 per nibble, the nibble is
    // that value in 4-bit two's complement (gemvNBitsSym).
    for (let i = 0; i < codes.length; i++) codes[i] = (codes[i] as number) ^ 0x88;
    z.fill(8);
  } else {
    const zRow = Math.ceil(kBlocks / 2);
    for (let n = 0; n < N; n++)
      for (let b = 0; b < kBlocks; b++) {
        const byte = zp[n * zRow + (b >> 1)] as number;
        z[n * kBlocks + b] = b & 1 ? byte >> 4 : byte & 15;
      }
  }
  const kp = kBlocks * bs;
  const h: WasmNBits = {
    K,
    N,
    kp,
    perm: stepPermutation(kp, NBITS_STEP),
    at: [wAt, sAt, zAt],
    kBlocks,
    steps: bs / GEMV_STEP,
    symmetric: !zp,
  };
  holdRegions(h, arena, [
    [wAt, sizes[0]],
    [sAt, sizes[1]],
    [zAt, sizes[2]],
  ]);
  return h;
}

export function gemvNBitsWasm(
  x: Float32Array,
  m: number,
  h: WasmNBits,
  ctx?: ComputeContext,
): Float32Array | undefined {
  const r = ready(ctx);
  if (!r) return undefined;
  const [wAt, sAt, zAt] = h.at as [number, number, number];
  const colBytes = h.kBlocks * h.steps * 16;
  return gemvRows(r, h, x, m, (xAt, yAt, j0, cols) => [
    h.symmetric ? 'gemvNBitsSym' : 'gemvNBits',
    xAt,
    wAt + j0 * colBytes,
    sAt + j0 * h.kBlocks * 4,
    zAt + j0 * h.kBlocks,
    yAt + j0 * 4,
    cols,
    h.kBlocks,
    h.steps,
  ]);
}

export interface WasmBnb4 extends GemvHandle {
  readonly kBlocks: number;
  readonly steps: number;
}

/**
 * Copies a MatMulBnb4 weight in; undefined where the kernel cannot take it (K not a multiple of
 * the block, or a block not a multiple of 32: blocks that cross rows or end mid-step).
 */
export function prepareBnb4Wasm(w: Bnb4GemvWeights, ctx?: ComputeContext): WasmBnb4 | undefined {
  const r = ready(ctx);
  const { K, N, blockSize: bs } = w;
  if (!r || bs % GEMV_STEP !== 0 || K % bs !== 0) return undefined;
  const { k: kern, arena } = r;
  const sizes: [number, number, number] = [w.packed.length, w.absmax.length * 4, 64];
  const [wAt, sAt, pAt] = sizes.map((s) => arena.alloc(s)) as [number, number, number];
  const mem = kern.memory.buffer;
  new Uint8Array(mem).set(w.packed, wAt);
  new Float32Array(mem).set(w.absmax, sAt / 4);
  const tableBytes = new Uint8Array(w.table.buffer, w.table.byteOffset, 64);
  const planes = new Uint8Array(mem, pAt, 64);
  for (let e = 0; e < 16; e++) for (let j = 0; j < 4; j++) planes[j * 16 + e] = tableBytes[e * 4 + j] as number;
  const h: WasmBnb4 = {
    K,
    N,
    kp: K,
    perm: stepPermutation(K, BNB4_STEP),
    at: [wAt, sAt, pAt],
    kBlocks: K / bs,
    steps: bs / GEMV_STEP,
  };
  holdRegions(h, arena, [
    [wAt, sizes[0]],
    [sAt, sizes[1]],
    [pAt, sizes[2]],
  ]);
  return h;
}

export function gemvBnb4Wasm(x: Float32Array, m: number, h: WasmBnb4, ctx?: ComputeContext): Float32Array | undefined {
  const r = ready(ctx);
  if (!r) return undefined;
  const [wAt, sAt, pAt] = h.at as [number, number, number];
  return gemvRows(r, h, x, m, (xAt, yAt, j0, cols) => [
    'gemvBnb4',
    xAt,
    wAt + (j0 * h.K) / 2,
    sAt + j0 * h.kBlocks * 4,
    pAt,
    yAt + j0 * 4,
    cols,
    h.kBlocks,
    h.steps,
  ]);
}

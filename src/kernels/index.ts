/**
 * The integer and 4-bit compute kernels, one stable entry for the interpreter and the bench.
 * Each function takes the fastest path the host has (WebAssembly SIMD, else JavaScript) and
 * returns the same bits on every path; `setKernelPath('js')` (or QK_KERNELS=js in Node's
 * environment) forces the JavaScript path, so tests cover both.
 */
import { QuantkitError } from '../errors.js';
import { makeLayout, type BlockLayout } from '../quant/layout.js';
import { dequantizeAffine, quantizeAffine, type NonFinite } from '../quant/affine.js';
import { gemmInt8Packed, packB, type PackedB } from './gemm-int8.js';
import { checkGemmInt8, type Int8Codes } from './gemm-int8.ref.js';
import { quantizeRowsInt8Blocks, type NBitsInt8Weights } from './nbits-int8.ref.js';
import {
  computeWasmAvailable,
  dequantizeWasm,
  gemmWasm,
  gemvBnb4Wasm,
  gemvNBitsWasm,
  packGemmBWasm,
  prepareBnb4Wasm,
  prepareNBitsWasm,
  quantizeWasm,
  allocKernelRegion,
  kernelMemory,
  quantizeResidentWasm,
  releaseKernelRegion,
  releaseGemmBWasm,
  type ComputeContext,
  type KernelRegion,
  type WasmBnb4,
  type WasmGemmB,
  type WasmNBits,
} from './compute-wasm.js';
import { kernelThreadsAvailable, threadedContext } from './threads.js';
import {
  checkBnb4Gemv,
  checkNBitsGemv,
  gemvBnb4Ref,
  gemvNBitsRef,
  type Bnb4GemvWeights,
  type NBitsGemvWeights,
} from './gemv-4bit.ref.js';

export type { Int8Codes } from './gemm-int8.ref.js';
export type { Bnb4GemvWeights, NBitsGemvWeights } from './gemv-4bit.ref.js';
export {
  matmulNBitsInt8Ref,
  quantizeRowsInt8Blocks,
  takesInt8Path,
  type Int8BlockRows,
  type NBitsInt8Weights,
} from './nbits-int8.ref.js';
export {
  kernelThreadsAvailable,
  kernelThreadsReady,
  setKernelWorkerHost,
  stopKernelThreads,
  type KernelWorker,
  type KernelWorkerHost,
} from './threads.js';

/** Which kernels run: 'auto' picks WebAssembly SIMD where the engine validates it. */
export type KernelPath = 'auto' | 'js';

let forced: KernelPath | undefined;

/** Forces the JavaScript kernels ('js') or restores the automatic choice ('auto'). */
export function setKernelPath(path: KernelPath): void {
  forced = path;
}

/** 'js' when forced by setKernelPath or the QK_KERNELS=js environment variable (Node). */
export function kernelPath(): KernelPath {
  if (forced) return forced;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.['QK_KERNELS'] === 'js' ? 'js' : 'auto';
}

let forcedThreads: number | undefined;

/** Sets the default thread count of the kernels (undefined: back to QK_THREADS, else 1). */
export function setKernelThreads(threads: number | undefined): void {
  if (threads !== undefined) checkThreads(threads, '`threads`');
  forcedThreads = threads;
}

/** The default thread count: setKernelThreads, else QK_THREADS in Node's environment, else 1. */
export function kernelThreads(): number {
  if (forcedThreads !== undefined) return forcedThreads;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const text = env?.['QK_THREADS'];
  if (text === undefined || text === '') return 1;
  const n = text === 'all' ? kernelThreadsAvailable() : Number(text);
  checkThreads(n, `QK_THREADS=${text}`);
  return n;
}

function checkThreads(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1)
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `${what} must be a whole number ≥ 1 (or 'all' for QK_THREADS), got ${n}`,
      'give the number of threads the kernels may use; 1 runs them on the calling thread',
    );
}

/** The threaded context for `options`, or undefined: one thread, or threads cannot run here. */
function contextFor(options: KernelOptions): ComputeContext | undefined {
  const threads = options.threads ?? kernelThreads();
  if (options.threads !== undefined) checkThreads(threads, '`threads`');
  return threads > 1 ? threadedContext(threads) : undefined;
}

/** Per-call choices of the kernels. */
export interface KernelOptions {
  /**
   * Threads to split the work over (the caller's included); default kernelThreads() (1 unless
   * setKernelThreads or QK_THREADS says otherwise). Results are the same bits for any count.
   */
  readonly threads?: number | undefined;
}

/** B of an int8 GEMM prepared once (a weight), for gemmInt8Prepacked; packed per path on first use. */
export interface GemmInt8B {
  readonly k: number;
  readonly n: number;
  /** @internal the codes and zero points, copied */
  readonly b: Int8Codes;
  readonly bZero: number | Int32Array;
  /** @internal */
  js?: PackedB;
  /** @internal */
  wasm?: WasmGemmB | undefined;
  /** @internal B in the threads' shared memory */
  shared?: WasmGemmB | undefined;
}

function useWasm(): boolean {
  return kernelPath() === 'auto' && computeWasmAvailable();
}

/**
 * Prepares B [K, N] (row-major uint8 or int8 codes) with its zero point: one number, or one per
 * column (length N). Prepare a weight once and reuse it; the arrays are copied.
 */
export function packGemmInt8B(b: Int8Codes, bZero: number | ArrayLike<number>, k: number, n: number): GemmInt8B {
  checkGemmInt8({ a: new Uint8Array(0), b, m: 0, k, n, aZero: 0, bZero });
  return { k, n, b: b.slice(), bZero: typeof bZero === 'number' ? bZero : Int32Array.from(bZero) };
}

/**
 * C [M, N] = Σ_k (A[i, k] − aZero)(B[k, j] − bZero[j]) as int32 (ONNX MatMulInteger, 2-D), for B
 * prepared by packGemmInt8B. A is [M, K] row-major uint8 or int8; aZero of A's type.
 */
export function gemmInt8Prepacked(
  a: Int8Codes,
  aZero: number,
  b: GemmInt8B,
  m: number,
  options: KernelOptions = {},
): Int32Array {
  checkGemmInt8({ a, b: b.b, m, k: b.k, n: b.n, aZero, bZero: b.bZero });
  // Threads take the blocked kernel (M ≥ 4); fewer rows are a GEMV, bound by reading B once.
  const ctx = m >= 4 && useWasm() ? contextFor(options) : undefined;
  if (ctx) {
    b.shared ??= packGemmBWasm(b.b, b.k, b.n, b.bZero, ctx);
    const c = b.shared && gemmWasm(a, aZero, b.shared, m, ctx);
    if (c) return c;
  }
  if (useWasm()) {
    b.wasm ??= packGemmBWasm(b.b, b.k, b.n, b.bZero);
    const c = b.wasm && gemmWasm(a, aZero, b.wasm, m);
    if (c) return c;
  }
  b.js ??= packB(b.b, b.k, b.n, b.bZero);
  return gemmInt8Packed(a, m, aZero, b.js);
}

/**
 * C [M, N] int32 = MatMulInteger(A [M, K], B [K, N]), row-major, codes uint8 or int8 (any mix),
 * zero points of each operand's type: aZero one number, bZero one number or one per column of B
 * (Int32Array or any array of length N). Equal bit for bit to gemmInt8Ref (exact int32 sums,
 * modulo 2^32). Packs B on every call: for a weight, packGemmInt8B once + gemmInt8Prepacked.
 */
export function gemmInt8(
  a: Int8Codes,
  aZero: number,
  b: Int8Codes,
  bZero: number | ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  options: KernelOptions = {},
): Int32Array {
  checkGemmInt8({ a, b, m, k, n, aZero, bZero });
  if (useWasm()) {
    const ctx = m >= 4 ? contextFor(options) : undefined;
    const packed = packGemmBWasm(b, k, n, bZero, ctx);
    const c = packed && gemmWasm(a, aZero, packed, m, ctx);
    if (packed) releaseGemmBWasm(packed);
    if (c) return c;
  }
  return gemmInt8Packed(a, m, aZero, packB(b, k, n, bZero));
}

/*
 * GEMV weights are copied into WebAssembly memory on first use and cached by the identity of
 * their packed array (and scales/zero points): a weight's arrays must not change once used.
 */
const nbitsCache = new WeakMap<Uint8Array, { w: NBitsGemvWeights; h: WasmNBits | undefined }>();
const bnb4Cache = new WeakMap<Uint8Array, { w: Bnb4GemvWeights; h: WasmBnb4 | undefined }>();
/** The same, in the threads' shared memory. */
const nbitsShared = new WeakMap<Uint8Array, { w: NBitsGemvWeights; h: WasmNBits | undefined }>();
const bnb4Shared = new WeakMap<Uint8Array, { w: Bnb4GemvWeights; h: WasmBnb4 | undefined }>();

/**
 * The WebAssembly form of a weight, cached by its packed bytes and made again only when one of
 * `fields` (its shape or its other arrays) is no longer what it was made from.
 */
function prepared<W extends { packed: Uint8Array }, H>(
  cache: WeakMap<Uint8Array, { w: W; h: H | undefined }>,
  w: W,
  fields: readonly (keyof W)[],
  prepare: () => H | undefined,
): H | undefined {
  const e = cache.get(w.packed);
  if (e && fields.every((f) => e.w[f] === w[f])) return e.h;
  const made = { w: { ...w }, h: prepare() };
  cache.set(w.packed, made);
  return made.h;
}

/**
 * Y [M, N] float32 = X [M, K] · B for a MatMulNBits 4-bit weight (layout in NBitsGemvWeights),
 * dequantizing on the fly; batch-1 decoding (M = 1) and small M. Every path sums in the order
 * gemvNBitsRef fixes, so they agree bit for bit; vs ONNX Runtime's MatMulNBits (accuracy_level 0)
 * within float32 rounding. The weight's arrays are cached in WebAssembly memory (see above).
 */
export function gemvNBits(x: Float32Array, m: number, w: NBitsGemvWeights, options: KernelOptions = {}): Float32Array {
  checkNBitsGemv(x, m, w);
  if (useWasm()) {
    const ctx = contextFor(options);
    const cache = ctx ? nbitsShared : nbitsCache;
    const h = prepared(cache, w, ['K', 'N', 'blockSize', 'scales', 'zeroPoints'], () => prepareNBitsWasm(w, ctx));
    const y = h && gemvNBitsWasm(x, m, h, ctx);
    if (y) return y;
  }
  return gemvNBitsRef(x, m, w);
}

/**
 * Y [M, N] float32 = X [M, K] · B for a MatMulBnb4 weight (NF4 or FP4; layout in
 * Bnb4GemvWeights), codebook lookup on the fly; same order and contract as gemvNBits. The
 * WebAssembly kernel takes K a multiple of the block and blocks a multiple of 32 (every real
 * model's); other shapes take the reference.
 */
export function gemvBnb4(x: Float32Array, m: number, w: Bnb4GemvWeights, options: KernelOptions = {}): Float32Array {
  checkBnb4Gemv(x, m, w);
  if (useWasm()) {
    const ctx = contextFor(options);
    const cache = ctx ? bnb4Shared : bnb4Cache;
    const h = prepared(cache, w, ['K', 'N', 'blockSize', 'absmax', 'table'], () => prepareBnb4Wasm(w, ctx));
    const y = h && gemvBnb4Wasm(x, m, h, ctx);
    if (y) return y;
  }
  return gemvBnb4Ref(x, m, w);
}

/** A MatMulNBits weight's blocks as int8 GEMM operands, kept while its packed bytes live. */
const int8BlocksCache = new WeakMap<Uint8Array, { w: NBitsInt8Weights; blocks: GemmInt8B[] }>();

/** Block b of the weight as B [len, N]: the codes (uint8) with each column's zero point. */
function int8Blocks(w: NBitsInt8Weights): GemmInt8B[] {
  const hit = int8BlocksCache.get(w.packed);
  if (hit && (['K', 'N', 'bits', 'blockSize', 'scales', 'zeroPoints'] as const).every((f) => hit.w[f] === w[f]))
    return hit.blocks;
  const { K, N, bits, blockSize: bs, packed, zeroPoints } = w;
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const mask = (1 << bits) - 1;
  const blocks: GemmInt8B[] = [];
  for (let blk = 0; blk < kBlocks; blk++) {
    const len = Math.min(bs, K - blk * bs);
    const b = new Uint8Array(len * N);
    const zero = new Int32Array(N);
    for (let n = 0; n < N; n++) {
      const zbit = blk * bits;
      zero[n] = zeroPoints ? ((zeroPoints[n * zpRow + (zbit >> 3)] as number) >> (zbit & 7)) & mask : 1 << (bits - 1);
      const base = (n * kBlocks + blk) * blob;
      for (let j = 0; j < len; j++) {
        const bit = j * bits;
        b[j * N + n] = ((packed[base + (bit >> 3)] as number) >> (bit & 7)) & mask;
      }
    }
    blocks.push(packGemmInt8B(b, zero, len, N));
  }
  int8BlocksCache.set(w.packed, { w: { ...w }, blocks });
  return blocks;
}

/**
 * Y [M, N] float32 = X [M, K] · W for MatMulNBits at accuracy_level 4 (nbits-int8.ref.ts states
 * the arithmetic): A quantized per block, then each block's integer dots as one int8 GEMM
 * (gemmInt8Prepacked, the weight's blocks prepared once) and the terms sA·sB·dot added in float64
 * block by block, the reference's order, so the result is the reference's bits.
 */
export function matmulNBitsInt8(
  x: Float32Array,
  m: number,
  w: NBitsInt8Weights,
  options: KernelOptions = {},
): Float32Array {
  const { K, N, blockSize: bs, scales } = w;
  const kBlocks = Math.ceil(K / bs);
  const blocks = int8Blocks(w);
  const { codes, scales: aScales } = quantizeRowsInt8Blocks(x, m, K, bs);
  const y = new Float64Array(m * N);
  const a = new Int8Array(m * bs);
  for (let blk = 0; blk < kBlocks; blk++) {
    const start = blk * bs;
    const len = Math.min(bs, K - start);
    for (let row = 0; row < m; row++) a.set(codes.subarray(row * K + start, row * K + start + len), row * len);
    const dots = gemmInt8Prepacked(a.subarray(0, m * len), 0, blocks[blk] as GemmInt8B, m, options);
    for (let row = 0; row < m; row++) {
      const sA = aScales[row * kBlocks + blk] as number;
      for (let n = 0; n < N; n++)
        y[row * N + n] =
          (y[row * N + n] as number) + sA * (scales[n * kBlocks + blk] as number) * (dots[row * N + n] as number);
    }
  }
  return Float32Array.from(y);
}

/**
 * Quantization parameters of an 8-bit tensor: x viewed as [outer, C, inner] where C =
 * scale.length (per-tensor: C = 1, inner = x.length); channel c uses scale[c] and zeroPoint[c].
 */
export interface Int8LinearParams {
  readonly scale: Float32Array;
  /** One per channel, of the output type's range (int8 −128…127, uint8 0…255); absent: 0. */
  readonly zeroPoint?: ArrayLike<number> | undefined;
  /** int8 codes (true) or uint8 (false). */
  readonly signed: boolean;
  /** Elements after the channel axis (the product of the dimensions after it); 1 for the last axis. */
  readonly inner: number;
  /** NaN/±Inf: 'error' (a QuantkitError naming the element, the default) or 'clamp' (NaN → zero point). */
  readonly nonFinite?: NonFinite;
}

function layoutOf(count: number, p: Int8LinearParams): BlockLayout {
  const c = p.scale.length;
  const outer = count / (c * p.inner);
  if (!Number.isInteger(outer) || (p.zeroPoint && p.zeroPoint.length !== c))
    throw new QuantkitError(
      'QK_BAD_PARAM_COUNT',
      `8-bit quantize: ${count} values do not split into [outer, ${c} channels, ${p.inner}]${p.zeroPoint ? ` with ${p.zeroPoint.length} zero points` : ''}`,
      'pass one scale and zero point per channel and the size of the dimensions after the channel axis',
    );
  // The shapes quantizeAffine walks fastest: one run per tensor, per column, or per channel run.
  if (c === 1) return makeLayout([count], [count]);
  if (p.inner === 1) return makeLayout([outer, c], [outer, 1]);
  return makeLayout([outer, c, p.inner], [outer, 1, p.inner]);
}

/**
 * ONNX QuantizeLinear to int8/uint8, per tensor or per channel: q = saturate(round_half_even(
 * fround(x / scale)) + zeroPoint), the division in float32 as ONNX Runtime does it, so codes
 * equal its codes bit for bit (quant/affine.ts quantizeAffine is the reference). Writes into
 * `out` when given (a buffer reused across calls saves allocating and faulting in fresh pages).
 */
export function quantizeLinearInt8(
  x: Float32Array,
  p: Int8LinearParams,
  out?: Int8Array | Uint8Array,
  options: KernelOptions = {},
): Int8Array | Uint8Array {
  const layout = layoutOf(x.length, p);
  const codes = out ?? (p.signed ? new Int8Array(x.length) : new Uint8Array(x.length));
  if (codes.length !== x.length || codes instanceof Int8Array !== p.signed)
    throw new QuantkitError(
      'QK_BAD_SHAPE',
      `8-bit quantize: the output holds ${codes.length} ${codes instanceof Int8Array ? 'int8' : 'uint8'} codes for ${x.length} ${p.signed ? 'int8' : 'uint8'} values`,
      "pass an output of the codes' type and the input's length, or none",
    );
  const zp = p.zeroPoint ? Int32Array.from(p.zeroPoint) : undefined;
  // A NaN/±Inf stops the kernel; the reference then names it (or clamps it).
  // Threads pay only when the tensor outweighs waking them (tens of microseconds).
  const ctx = useWasm() && x.length >= PARALLEL_QUANTIZE_FROM ? contextFor(options) : undefined;
  if (useWasm() && quantizeWasm(x, { scale: p.scale, zeroPoint: zp, signed: p.signed, inner: p.inner }, codes, ctx))
    return codes;
  quantizeAffine(
    x,
    layout,
    { scale: p.scale, zeroPoint: zp, qmin: p.signed ? -128 : 0, qmax: p.signed ? 127 : 255 },
    codes,
    { nonFinite: p.nonFinite },
  );
  return codes;
}

/** Elements from which quantizeLinearInt8 uses threads. */
const PARALLEL_QUANTIZE_FROM = 1 << 18;
/**
 * An array for data a kernel reads or writes where it lies (quantizeLinearInt8Resident): kept in
 * the WebAssembly kernels' memory where they run (a plain typed array where they do not), so no
 * copy goes in or out. `view()` gives a typed array over it; take a fresh one after any other
 * kernel call, since the memory may grow and detach views made before. `release()` returns the
 * memory (else it is returned when the array is garbage-collected).
 */
export interface KernelArray<T extends Float32Array | Int8Array | Uint8Array> {
  readonly length: number;
  view(): T;
  release(): void;
}

type Make<T> = (buffer: ArrayBuffer, at: number, length: number) => T;

class KernelArrayImpl<T extends Float32Array | Int8Array | Uint8Array> implements KernelArray<T> {
  /** @internal where it lies in the kernels' memory; undefined: a plain array (or released) */
  region: KernelRegion | undefined;
  private plain: T | undefined;
  private released = false;
  constructor(
    readonly length: number,
    bytesPer: number,
    private readonly make: Make<T>,
  ) {
    this.region = useWasm() ? allocKernelRegion(Math.max(1, length * bytesPer), this) : undefined;
    if (!this.region) this.plain = make(new ArrayBuffer(length * bytesPer), 0, length);
  }
  view(): T {
    if (this.released)
      throw new QuantkitError('QK_BAD_SHAPE', 'a kernel array was used after release()', 'allocate a new one');
    return this.plain ?? this.make(kernelMemory(), (this.region as KernelRegion).at, this.length);
  }
  release(): void {
    if (this.region) releaseKernelRegion(this.region, this);
    this.region = undefined;
    this.plain = undefined;
    this.released = true;
  }
}

/** `length` floats for a kernel to read in place (see KernelArray). */
export function allocKernelFloat32(length: number): KernelArray<Float32Array> {
  return new KernelArrayImpl(length, 4, (b, at, n) => new Float32Array(b, at, n));
}

/** `length` int8 (signed) or uint8 codes for a kernel to write in place (see KernelArray). */
export function allocKernelCodes(length: number, signed: true): KernelArray<Int8Array>;
export function allocKernelCodes(length: number, signed: false): KernelArray<Uint8Array>;
export function allocKernelCodes(length: number, signed: boolean): KernelArray<Int8Array> | KernelArray<Uint8Array> {
  return signed
    ? new KernelArrayImpl(length, 1, (b, at, n) => new Int8Array(b, at, n))
    : new KernelArrayImpl(length, 1, (b, at, n) => new Uint8Array(b, at, n));
}

/**
 * quantizeLinearInt8 of an input into an output that lie where the kernel works
 * (allocKernelFloat32, allocKernelCodes): the same codes, without copying x in or the codes out.
 * Where the kernel meets a NaN/±Inf (or does not run) quantizeLinearInt8 does the work, naming
 * the value, or clamping it with `nonFinite: 'clamp'`.
 */
export function quantizeLinearInt8Resident(
  x: KernelArray<Float32Array>,
  p: Int8LinearParams,
  out: KernelArray<Int8Array> | KernelArray<Uint8Array>,
): void {
  layoutOf(x.length, p);
  const signedOut = out.view() instanceof Int8Array;
  if (out.length !== x.length || signedOut !== p.signed)
    throw new QuantkitError(
      'QK_BAD_SHAPE',
      `8-bit quantize: the output holds ${out.length} ${signedOut ? 'int8' : 'uint8'} codes for ${x.length} ${p.signed ? 'int8' : 'uint8'} values`,
      "pass an output of the codes' type and the input's length",
    );
  const xAt = x instanceof KernelArrayImpl ? x.region : undefined;
  const outAt = out instanceof KernelArrayImpl ? out.region : undefined;
  const zp = p.zeroPoint ? Int32Array.from(p.zeroPoint) : undefined;
  const params = { scale: p.scale, zeroPoint: zp, signed: p.signed, inner: p.inner };
  if (useWasm() && xAt && outAt && quantizeResidentWasm(xAt.at, x.length, params, outAt.at)) return;
  // Copied out of the kernels' memory first: quantizeLinearInt8 may grow it, detaching views.
  const codes = quantizeLinearInt8(xAt ? x.view().slice() : x.view(), p);
  out.view().set(codes);
}

/** ONNX DequantizeLinear of int8/uint8 codes: x = fround((q − zeroPoint) · scale), same layout. */
export function dequantizeLinearInt8(q: Int8Array | Uint8Array, p: Int8LinearParams): Float32Array {
  const layout = layoutOf(q.length, p);
  const zp = p.zeroPoint ? Int32Array.from(p.zeroPoint) : undefined;
  const out = new Float32Array(q.length);
  if (useWasm() && dequantizeWasm(q, { scale: p.scale, zeroPoint: zp, signed: p.signed, inner: p.inner }, out))
    return out;
  return dequantizeAffine(q, layout, {
    scale: p.scale,
    zeroPoint: zp,
    qmin: p.signed ? -128 : 0,
    qmax: p.signed ? 127 : 255,
  });
}

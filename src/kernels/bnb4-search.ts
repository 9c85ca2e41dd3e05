import { bnb4SearchWasmBase64 } from './bnb4-search-wasm.generated.js';
import { lazyWasmExports } from './wasm-instance.js';
import { quantizeBnb4, type Bnb4FastTwin, type Bnb4Options, type Bnb4Weights } from '../quant/bnb4-quant.js';

/*
 * Driver of the WebAssembly SIMD search of nf4 / fp4 block constants (bnb4-search.wat): for each
 * block, the candidate constants absmax · ratio and up to three least-squares steps, keeping the
 * one of least squared error, in the order and float arithmetic of the JS search in
 * passes/weight-only/bnb4-quant.ts (chooseConstant), so the chosen constants are bit-identical to
 * it. The module is instantiated once per thread on first use; where WebAssembly SIMD is missing
 * the caller keeps its JS search.
 */

interface Exports {
  readonly memory: WebAssembly.Memory;
  readonly search: (
    input: number,
    len: number,
    blockSize: number,
    abs: number,
    out: number,
    scratch: number,
    symmetric: number,
  ) => void;
  readonly encode: (
    input: number,
    len: number,
    blockSize: number,
    abs: number,
    codes: number,
    scratch: number,
    symmetric: number,
    sums: number,
  ) => void;
}

/** A codebook as the search reads it: sorted distinct values and the float64 midpoints between them. */
export interface SearchTable {
  readonly sortedValues: ArrayLike<number>;
  /** midpoints[i] between sortedValues[i] and [i + 1]; x > midpoints[i] rounds up ('lower-value' ties). */
  readonly midpoints: ArrayLike<number>;
  /** The code of each sorted value (what encodeBnb4Blocks writes). */
  readonly sortedCodes: ArrayLike<number>;
}

// Byte addresses of the kernel's constants (bnb4-search.wat's header) and of the scratch.
const TH = 0;
const DV = 256;
const RATIO = 512;
const CAP2 = 784;
const SIGN = 800;
const CODES = 816;
const HALF = 832;
const SUMS = 912;
const SCRATCH = 1280; // after the search's ROWS 1024 (bnb4-search.wat $rows)
/** Floats handed to the kernel per call (1 MiB): keeps each thread's memory small. */
const CHUNK_FLOATS = 1 << 18;

/** The kernel's exports, or null where WebAssembly (with SIMD) is missing. */
const kernel = lazyWasmExports<Exports>(bnb4SearchWasmBase64);

/** True where the WebAssembly SIMD kernel can run. */
export function bnb4SearchWasmAvailable(): boolean {
  return kernel() !== null;
}

let enabled = true;

/**
 * Turns the kernel off in this thread (the callers take their JS search) or on again: the
 * baseline of bench/bnb4-speed.bench.ts and of the tests that compare whole files.
 */
export function enableBnb4SearchWasm(on: boolean): void {
  enabled = on;
}

const F = new Float32Array(1);
const I = new Int32Array(F.buffer);

/**
 * The largest float32 ≤ m: for every float32 t (±Inf too), t > m ⟺ t > floatAtOrBelow(m), which
 * lets the kernel compare in float32 where the JS search compares with the float64 midpoint.
 */
export function floatAtOrBelow(m: number): number {
  F[0] = m;
  if ((F[0] as number) <= m) return F[0] as number;
  const t = F[0] as number;
  if (t === 0)
    I[0] = 0x80000001; // just below +0: −(smallest subnormal)
  else I[0] = (I[0] as number) + (t > 0 ? -1 : 1);
  return F[0] as number;
}

function bitsOf(x: number): number {
  F[0] = x;
  return I[0] as number;
}

/**
 * Writes the kernel's thresholds (TH) and value deltas (DV) for `table` into `mem` (an Int32 view
 * of the constants), in the symmetric form where the table allows it (bnb4-search.wat's header);
 * returns whether it did.
 */
function writeTable(mem: Int32Array, table: SearchTable): boolean {
  const values = table.sortedValues;
  const mids = table.midpoints;
  const n = values.length;
  const half = (n - 1) / 2;
  let symmetric = n % 2 === 1 && half <= 7 && values[half] === 0;
  for (let i = 0; symmetric && i < n; i++) symmetric = values[i] === -(values[n - 1 - i] as number);
  for (let j = 0; symmetric && j < half; j++) symmetric = bitsOf(floatAtOrBelow(mids[half + j] as number)) < 0x3fffffff;
  const put = (at: number, j: number, v: number) => mem.fill(v, (at >> 2) + 4 * j, (at >> 2) + 4 * j + 4);
  for (let j = 0; j < 15; j++) {
    if (symmetric) {
      const p = mids[half + j] as number;
      put(TH, j, j < half ? 2 * bitsOf(floatAtOrBelow(p)) + (Math.fround(p) === p ? 0 : 1) : 0x7fffffff);
      put(DV, j + 1, j < half ? (bitsOf(values[half + j + 1] as number) - bitsOf(values[half + j] as number)) | 0 : 0);
    } else {
      put(TH, j, j < n - 1 ? bitsOf(floatAtOrBelow(mids[j] as number)) : bitsOf(Infinity));
      put(DV, j + 1, j < n - 1 ? (bitsOf(values[j + 1] as number) - bitsOf(values[j] as number)) | 0 : 0);
    }
  }
  put(DV, 0, symmetric ? 0 : bitsOf(values[0] as number));
  put(CAP2, 0, 0x7ffffffe);
  put(SIGN, 0, -0x80000000);
  put(HALF, 0, symmetric ? half : 0);
  const codes = new Uint8Array(mem.buffer, mem.byteOffset + CODES, 16);
  for (let j = 0; j < 16; j++) codes[j] = j < n ? (table.sortedCodes[j] as number) : 0;
  return symmetric;
}

/**
 * Replaces each block's absolute maximum in `absmax` (block b = x[b·blockSize …], the last block
 * possibly short) by the chosen constant: 0 for an all-zero block, else the best of
 * absmax · ratios[r] (ratios[0] must be 1) refined by least squares, as chooseConstant. Returns
 * false, leaving `absmax` untouched, where the kernel cannot run: no WebAssembly SIMD, memory
 * that cannot grow, or a table it does not take (more than 16 values, or none equal to 0 — the
 * kernel pads short blocks with zeros, which must quantize to an exact 0).
 */
export function searchBnb4Constants(
  x: Float32Array,
  blockSize: number,
  table: SearchTable,
  ratios: Float32Array,
  absmax: Float32Array,
): boolean {
  if (ratios.length !== 31 || ratios[0] !== 1) return false;
  const run = prepare(x, blockSize, table, absmax);
  if (!run) return false;
  const { k, f32, chunkBlocks, input, abs, nb, symmetric } = run;
  f32.set(ratios, RATIO >> 2);
  for (let b0 = 0; b0 < nb; b0 += chunkBlocks) {
    const b1 = Math.min(nb, b0 + chunkBlocks);
    const x0 = b0 * blockSize;
    const x1 = Math.min(x.length, b1 * blockSize);
    f32.set(x.subarray(x0, x1), input >> 2);
    f32.set(absmax.subarray(b0, b1), abs >> 2);
    k.search(input, x1 - x0, blockSize, abs, abs, SCRATCH, symmetric ? 1 : 0);
    absmax.set(f32.subarray(abs >> 2, (abs >> 2) + (b1 - b0)), b0);
  }
  return true;
}

/**
 * The codes of every block of x at its constant (one byte each into `codes`, two a byte into
 * `packed`, the first in the high nibble), as bnb4-quant.ts encodeBlock, and Σx² and
 * Σ(x − dequantized x)² summed as quantizeBnb4 sums them (block by block, in order). Undefined,
 * writing nothing, where the kernel cannot run (see searchBnb4Constants).
 */
export function encodeBnb4Blocks(
  x: Float32Array,
  blockSize: number,
  table: SearchTable,
  constants: Float32Array,
  codes: Uint8Array,
  packed: Uint8Array,
): [number, number] | undefined {
  const run = prepare(x, blockSize, table, constants);
  if (!run || codes.length !== x.length || packed.length !== Math.ceil(x.length / 2)) return undefined;
  const { k, f32, chunkBlocks, input, abs, nb, symmetric } = run;
  const out = abs + 4 * chunkBlocks;
  const f64 = new Float64Array(f32.buffer, SUMS, 2);
  f64.fill(0);
  const bytes = new Uint8Array(f32.buffer);
  for (let b0 = 0; b0 < nb; b0 += chunkBlocks) {
    const b1 = Math.min(nb, b0 + chunkBlocks);
    const x0 = b0 * blockSize;
    const x1 = Math.min(x.length, b1 * blockSize);
    f32.set(x.subarray(x0, x1), input >> 2);
    f32.set(constants.subarray(b0, b1), abs >> 2);
    k.encode(input, x1 - x0, blockSize, abs, out, SCRATCH, symmetric ? 1 : 0, SUMS);
    codes.set(bytes.subarray(out, out + (x1 - x0)), x0);
  }
  // Two codes a byte, the first in the high nibble.
  const n = x.length;
  let i = 0;
  for (; i + 1 < n; i += 2) packed[i >> 1] = ((codes[i] as number) << 4) | (codes[i + 1] as number);
  if (i < n) packed[i >> 1] = (codes[i] as number) << 4;
  return [f64[0] as number, f64[1] as number];
}

/** The kernel with its memory grown for x in chunks and the table written, or undefined (see searchBnb4Constants). */
function prepare(x: Float32Array, blockSize: number, table: SearchTable, perBlock: Float32Array) {
  const k = enabled ? kernel() : null;
  const values = table.sortedValues;
  if (
    !k ||
    values.length > 16 ||
    values.length < 1 ||
    table.midpoints.length !== values.length - 1 ||
    table.sortedCodes.length !== values.length
  )
    return undefined;
  if (!Array.prototype.includes.call(values, 0)) return undefined;
  const nb = Math.ceil(x.length / blockSize);
  if (perBlock.length !== nb || !(blockSize >= 2) || blockSize % 2 !== 0) return undefined;
  const chunkBlocks = Math.max(1, Math.floor(CHUNK_FLOATS / blockSize));
  const input = SCRATCH + 176 * blockSize; // the search's scratch: x, x as f64, $prepFast's lookups
  const abs = input + 4 * chunkBlocks * blockSize;
  const end = abs + 4 * chunkBlocks + chunkBlocks * blockSize; // + encode's codes
  const mem = k.memory;
  if (end > mem.buffer.byteLength) {
    try {
      mem.grow(Math.ceil((end - mem.buffer.byteLength) / 65536));
    } catch {
      return undefined;
    }
  }
  const f32 = new Float32Array(mem.buffer);
  const symmetric = writeTable(new Int32Array(mem.buffer, 0, SCRATCH >> 2), table);
  return { k, f32, chunkBlocks, input, abs, nb, symmetric };
}

/** This module as quant/bnb4-quant.ts's fast twin of the block search and encoding. */
export const BNB4_WASM_TWIN: Bnb4FastTwin = { searchConstants: searchBnb4Constants, encodeBlocks: encodeBnb4Blocks };

/** quantizeBnb4 with the WebAssembly twin where it runs (the same bytes either way; tests). */
export function quantizeBnb4Fast(wt: Float32Array, o: Bnb4Options): Bnb4Weights {
  return quantizeBnb4(wt, o, BNB4_WASM_TWIN);
}

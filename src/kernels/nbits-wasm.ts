import { nbitsWasmBase64 } from './nbits-wasm.generated.js';
import { lazyWasmExports } from './wasm-instance.js';

/*
 * Driver of the WebAssembly SIMD block quantizer (nbits.wat): symmetric 4- and 8-bit MatMulNBits
 * blocks with the error-minimising scale search, bit-identical to its reference, the JS kernel in
 * quant/nbits-quant.ts (each SIMD lane runs one block in the JS kernel's order).
 * The module is instantiated from bytes embedded in a generated module (no file access, so the
 * browser build works too), once per thread, on first use; a host without WebAssembly SIMD gets
 * undefined and nbits-dispatch.ts keeps the JS path.
 */

interface Exports {
  readonly memory: WebAssembly.Memory;
  readonly symStrip: (
    strip: number,
    N4: number,
    N: number,
    rows: number,
    bits: number,
    blob: number,
    dst: number,
    stride: number,
    sdst: number,
    sstride: number,
    acc: number,
  ) => number;
}

/** The kernel's exports, or null where WebAssembly (with SIMD) is missing. */
const kernel = lazyWasmExports<Exports>(nbitsWasmBase64);

/** True where the WebAssembly SIMD kernel can run. */
export function nbitsWasmAvailable(): boolean {
  return kernel() !== null;
}

export interface SymBlocks {
  /** [N · kBlocks · blockSize·bits/8], MatMulNBits B. */
  readonly packed: Uint8Array;
  /** [N · kBlocks] */
  readonly scales: Float32Array;
  readonly signalSq: number;
  readonly noiseSq: number;
}

/** Scratch bytes the kernel keeps per call (running sums and per-lane values), at address 0. */
const ACC_BYTES = 512;

/**
 * Symmetric block quantization (zero point 2^(bits−1)) of a MatMul weight B given row-major
 * [K, N], blocks of `blockSize` along K: the JS kernel's scale search, in WebAssembly. Returns
 * undefined where WebAssembly SIMD is missing or its memory cannot grow that far, and `{ nonFinite: [n, b] }` for the first block
 * (output n, block b) holding NaN or ±Inf, for the caller to report.
 */
export function quantizeSymBlocksWasm(
  data: Float32Array,
  K: number,
  N: number,
  bits: 4 | 8,
  blockSize: number,
): SymBlocks | { readonly nonFinite: readonly [number, number] } | undefined {
  const k = kernel();
  if (!k) return undefined;
  const N4 = (N + 3) & ~3;
  const kBlocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const stripAt = ACC_BYTES;
  const stripBytes = blockSize * N4 * 4;
  const packedAt = stripAt + stripBytes;
  // Padding columns N..N4 write their (ignored) blocks past N: room for N4 rows.
  const packedBytes = N4 * kBlocks * blob;
  const scalesAt = (packedAt + packedBytes + 15) & ~15;
  const end = scalesAt + N4 * kBlocks * 4;
  const mem = k.memory;
  if (end > mem.buffer.byteLength) {
    try {
      mem.grow(Math.ceil((end - mem.buffer.byteLength) / 65536));
    } catch {
      return undefined; // beyond what the engine gives a 32-bit memory: the JS kernel does it
    }
  }
  const f32 = new Float32Array(mem.buffer);
  const f64 = new Float64Array(mem.buffer, 0, 2);
  f64[0] = 0;
  f64[1] = 0;
  const stripF = stripAt / 4;
  if (N4 !== N) f32.fill(0, stripF, stripF + blockSize * N4);
  for (let b = 0, k0 = 0; k0 < K; b++, k0 += blockSize) {
    const rows = Math.min(blockSize, K - k0);
    if (N4 === N) f32.set(data.subarray(k0 * N, (k0 + rows) * N), stripF);
    else for (let i = 0; i < rows; i++) f32.set(data.subarray((k0 + i) * N, (k0 + i + 1) * N), stripF + i * N4);
    const bad = k.symStrip(
      stripAt,
      N4,
      N,
      rows,
      bits,
      blob,
      packedAt + b * blob,
      kBlocks * blob,
      scalesAt + b * 4,
      kBlocks * 4,
      0,
    );
    if (bad >= 0) return { nonFinite: [bad, b] };
  }
  const bytes = new Uint8Array(mem.buffer);
  return {
    packed: bytes.slice(packedAt, packedAt + N * kBlocks * blob),
    scales: new Float32Array(mem.buffer.slice(scalesAt, scalesAt + N * kBlocks * 4)),
    signalSq: f64[0] as number,
    noiseSq: f64[1] as number,
  };
}

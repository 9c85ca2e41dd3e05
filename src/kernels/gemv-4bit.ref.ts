import { QuantkitError } from '../errors.js';

/**
 * MatMulNBits (4-bit, com.microsoft) weights as ONNX Runtime stores them, for Y [M, N] = X [M, K]
 * · dequantize(B) with float32 activations:
 *   packed     uint8 [N][kBlocks][blockSize / 2], two codes a byte, the LOW nibble first
 *              (element k of block b of column n at byte (n·kBlocks + b)·blockSize/2 + (k mod blockSize)/2)
 *   scales     float32 [N][kBlocks]
 *   zeroPoints uint8 [N][ceil(kBlocks / 2)] packed two a byte, low nibble first; absent: 8
 *   W[k, n]    = (code − zero point) · scale of its block; kBlocks = ceil(K / blockSize).
 */
export interface NBitsGemvWeights {
  readonly K: number;
  readonly N: number;
  readonly blockSize: number;
  readonly packed: Uint8Array;
  readonly scales: Float32Array;
  readonly zeroPoints?: Uint8Array | undefined;
}

/**
 * MatMulBnb4 weights (com.microsoft): the weight taken as [N, K] (the transpose of MatMul's B),
 * flattened row-major and cut into blocks of `blockSize` (blocks may cross rows):
 *   packed  uint8 [ceil(N·K / 2)], two codes a byte, the FIRST element in the HIGH nibble
 *   absmax  float32 [ceil(N·K / blockSize)]
 *   W[k, n] = table[code of element n·K + k] · absmax[(n·K + k) / blockSize]
 * with table NF4 (quant_type 1) or bitsandbytes' FP4 (quant_type 0), quant/codebook.ts.
 */
export interface Bnb4GemvWeights {
  readonly K: number;
  readonly N: number;
  readonly blockSize: number;
  readonly packed: Uint8Array;
  readonly absmax: Float32Array;
  /** The 16 code values (NF4_TABLE or FP4_BNB_TABLE). */
  readonly table: Float32Array;
}

const f = Math.fround;

/** Elements a step takes: 16 packed bytes. */
export const GEMV_STEP = 32;

/**
 * Position in a 32-element step of lane `l` of product vector `v` (v = 0…7, l = 0…3), the order
 * each WebAssembly kernel produces its weights in, fixed here so every path sums alike and agrees
 * bit for bit. MatMulNBits: vector v lane l is nibble v of the step's int32 word l, element
 * 8l + v (the kernel shifts and masks whole words). MatMulBnb4: vectors 0–3 hold the even
 * elements (high nibbles), 4–7 the odd ones, four consecutive bytes per vector (the kernel looks
 * codes up a byte at a time).
 */
export type StepOrder = (v: number, l: number) => number;
export const NBITS_STEP: StepOrder = (v, l) => 8 * l + v;
export const BNB4_STEP: StepOrder = (v, l) => (v < 4 ? 2 * (4 * v + l) : 2 * (4 * (v - 4) + l) + 1);

/**
 * The summation order every path shares, for one output: the row is cut into segments (a block
 * of one scale), each segment into steps of 32 elements from its start up to `stepEnd`
 * (elements past the segment's `end` get x = 0 and the weight `pad` gives them). In a step the 32 products fround(x·w) form 8 vectors of
 * 4 lanes (`order`) summed as ((P0+P1)+(P2+P3)) + ((P4+P5)+(P6+P7)) into the segment's four
 * lane sums; at the segment's end the lanes are scaled and added to four running totals, and the
 * output is (T0+T1) + (T2+T3), every operation rounded to float32.
 */
function dotRow(
  x: Float32Array,
  xAt: number,
  segments: readonly (readonly [start: number, end: number, stepEnd: number, scale: number])[],
  value: (k: number) => number,
  pad: (k: number, start: number) => number,
  order: StepOrder,
): number {
  const t = [0, 0, 0, 0];
  const p = new Array<number>(8);
  for (const [start, end, stepEnd, scale] of segments) {
    const acc = [0, 0, 0, 0];
    for (let s = start; s < stepEnd; s += GEMV_STEP) {
      for (let l = 0; l < 4; l++) {
        for (let v = 0; v < 8; v++) {
          const k = s + order(v, l);
          p[v] = k < end ? f((x[xAt + k] as number) * value(k)) : f(0 * pad(k, start));
        }
        const lo = f(f((p[0] as number) + (p[1] as number)) + f((p[2] as number) + (p[3] as number)));
        const hi = f(f((p[4] as number) + (p[5] as number)) + f((p[6] as number) + (p[7] as number)));
        acc[l] = f((acc[l] as number) + f(lo + hi));
      }
    }
    for (let l = 0; l < 4; l++) t[l] = f((t[l] as number) + f((acc[l] as number) * scale));
  }
  return f(f((t[0] as number) + (t[1] as number)) + f((t[2] as number) + (t[3] as number)));
}

export function checkNBitsGemv(x: Float32Array, m: number, w: NBitsGemvWeights): void {
  const { K, N, blockSize } = w;
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0))
    throw new QuantkitError(
      'QK_BAD_BLOCK_SIZE',
      `4-bit GEMV: block size ${blockSize} is not a power of 2 ≥ 16`,
      'use the block size the weight was quantized with (MatMulNBits block_size)',
    );
  const kBlocks = Math.ceil(K / blockSize);
  checkLengths('4-bit GEMV', x, m, K, [
    ['packed B', w.packed.length, N * kBlocks * (blockSize / 2)],
    ['scales', w.scales.length, N * kBlocks],
    ...(w.zeroPoints ? [['zero points', w.zeroPoints.length, N * Math.ceil(kBlocks / 2)] as const] : []),
  ]);
}

export function checkBnb4Gemv(x: Float32Array, m: number, w: Bnb4GemvWeights): void {
  const { K, N, blockSize } = w;
  if (!(Number.isInteger(blockSize) && blockSize > 0))
    throw new QuantkitError('QK_BAD_BLOCK_SIZE', `NF4 GEMV: block size ${blockSize} is not a size`, 'pass block_size');
  checkLengths('NF4 GEMV', x, m, K, [
    ['packed B', w.packed.length, Math.ceil((N * K) / 2)],
    ['absmax', w.absmax.length, Math.ceil((N * K) / blockSize)],
    ['table', w.table.length, 16],
  ]);
}

function checkLengths(
  what: string,
  x: Float32Array,
  m: number,
  k: number,
  parts: readonly (readonly [string, number, number])[],
): void {
  if (x.length !== m * k)
    throw new QuantkitError(
      'QK_BAD_SHAPE',
      `${what}: the activations hold ${x.length} values, not M·K = ${m}·${k}`,
      'pass X as [M, K] row-major',
    );
  for (const [name, got, want] of parts)
    if (got !== want)
      throw new QuantkitError(
        'QK_BAD_SHAPE',
        `${what}: ${name} holds ${got} values, not ${want}`,
        'pass the tensors of one quantized weight, with its K, N and block size',
      );
}

/** Y [M, N] = X [M, K] · MatMulNBits-dequantized B, in the shared order (dotRow). */
export function gemvNBitsRef(x: Float32Array, m: number, w: NBitsGemvWeights): Float32Array {
  checkNBitsGemv(x, m, w);
  const { K, N, blockSize: bs, packed, scales, zeroPoints } = w;
  const kBlocks = Math.ceil(K / bs);
  const y = new Float32Array(m * N);
  for (let n = 0; n < N; n++) {
    // Every step of a block runs, the last block's too; its codes past K are read as stored, as
    // the kernel reads them (a block of 16 takes one step whose second half weighs 0).
    const segments: [number, number, number, number][] = [];
    for (let b = 0; b < kBlocks; b++)
      segments.push([
        b * bs,
        Math.min(K, (b + 1) * bs),
        b * bs + Math.max(bs, GEMV_STEP),
        scales[n * kBlocks + b] as number,
      ]);
    const code = (k: number): number => {
      const byte = packed[n * kBlocks * (bs / 2) + (k >> 1)] as number;
      return k & 1 ? byte >> 4 : byte & 15;
    };
    const zp = (k: number): number => {
      if (!zeroPoints) return 8;
      const b = Math.floor(k / bs);
      const byte = zeroPoints[n * Math.ceil(kBlocks / 2) + (b >> 1)] as number;
      return b & 1 ? byte >> 4 : byte & 15;
    };
    const value = (k: number): number => code(k) - zp(k);
    const pad = (k: number, start: number): number => (k - start < bs ? value(k) : 0);
    for (let i = 0; i < m; i++) y[i * N + n] = dotRow(x, i * K, segments, value, pad, NBITS_STEP);
  }
  return y;
}

/** Y [M, N] = X [M, K] · MatMulBnb4-dequantized B, in the shared order (dotRow). */
export function gemvBnb4Ref(x: Float32Array, m: number, w: Bnb4GemvWeights): Float32Array {
  checkBnb4Gemv(x, m, w);
  const { K, N, blockSize: bs, packed, absmax, table } = w;
  const y = new Float32Array(m * N);
  for (let n = 0; n < N; n++) {
    const row = n * K;
    // A segment is the part of row n inside one absmax block.
    const segments: [number, number, number, number][] = [];
    for (let k = 0; k < K;) {
      const b = Math.floor((row + k) / bs);
      const end = Math.min(K, (b + 1) * bs - row);
      segments.push([k, end, k + Math.ceil((end - k) / GEMV_STEP) * GEMV_STEP, absmax[b] as number]);
      k = end;
    }
    const value = (k: number): number => {
      const e = row + k;
      const byte = packed[e >> 1] as number;
      return table[e & 1 ? byte & 15 : byte >> 4] as number;
    };
    for (let i = 0; i < m; i++) y[i * N + n] = dotRow(x, i * K, segments, value, () => 0, BNB4_STEP);
  }
  return y;
}

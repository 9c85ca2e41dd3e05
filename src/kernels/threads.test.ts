import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convIntegerModel, matMulIntegerModel } from '../flows/bench-graphs.js';
import { runModel } from '../interp/run.js';
import { decodeModel } from '../io/onnx/proto.js';
import { nodeKernelWorkerHost } from '../node/kernel-workers.js';
import { makeTensor } from '../tensor/tensor.js';
import { NF4_TABLE } from '../quant/codebook.js';
import { mulberry32 } from '../quant/prng.js';
import { convInt8 } from './conv-int8.js';
import { convInt8Ref } from './conv-int8.ref.js';
import { gemmInt8Ref } from './gemm-int8.ref.js';
import type { Bnb4GemvWeights, NBitsGemvWeights } from './gemv-4bit.ref.js';
import {
  gemmInt8,
  gemmInt8Prepacked,
  gemvBnb4,
  gemvNBits,
  kernelThreads,
  kernelThreadsReady,
  packGemmInt8B,
  quantizeLinearInt8,
  setKernelThreads,
  setKernelWorkerHost,
  stopKernelThreads,
} from './index.js';

/*
 * The kernels on three threads (two workers and the caller) give the bits of one thread. The
 * machine may have fewer cores: the parts still split over the threads, just not at once.
 */
const THREADS = 3;

function bytes(count: number, seed: number): Uint8Array {
  const u = mulberry32(seed);
  return Uint8Array.from({ length: count }, () => Math.floor(u() * 256));
}

function floats(count: number, seed: number, scale: number): Float32Array {
  const u = mulberry32(seed);
  return Float32Array.from({ length: count }, () => (u() - 0.5) * scale);
}

function nbitsWeights(K: number, N: number, blockSize: number, withZp: boolean, seed: number): NBitsGemvWeights {
  const kBlocks = Math.ceil(K / blockSize);
  return {
    K,
    N,
    blockSize,
    packed: bytes(N * kBlocks * (blockSize / 2), seed),
    scales: floats(N * kBlocks, seed + 1, 0.1),
    zeroPoints: withZp ? bytes(N * Math.ceil(kBlocks / 2), seed + 2) : undefined,
  };
}

function bnb4Weights(K: number, N: number, blockSize: number, seed: number): Bnb4GemvWeights {
  return {
    K,
    N,
    blockSize,
    packed: bytes((N * K) / 2, seed),
    absmax: floats((N * K) / blockSize, seed + 1, 2),
    table: NF4_TABLE,
  };
}

/** The first index where a and b differ, −1 if none (vitest's deep equality is slow on long arrays). */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

let workers = 0;
beforeAll(async () => {
  setKernelWorkerHost(nodeKernelWorkerHost());
  workers = (await kernelThreadsReady(THREADS)) - 1;
});
afterAll(() => {
  stopKernelThreads();
  setKernelWorkerHost(undefined);
});

describe('kernels on threads give the bits of one thread', () => {
  it('workers start, and threads are off unless asked for', () => {
    expect(workers).toBe(THREADS - 1);
    expect(kernelThreads()).toBe(1);
  });

  it('int8 GEMM (u8×s8, per-column zero points): row and column blocks, K past one block', () => {
    for (const [m, k, n, seed] of [
      [4, 3, 5, 1],
      [37, 300, 70, 2],
      [70, 520, 300, 3],
    ] as const) {
      const a = bytes(m * k, seed);
      const b = new Int8Array(bytes(k * n, seed + 1).buffer);
      const bZero = Array.from(new Int8Array(bytes(n, seed + 2).buffer));
      const want = gemmInt8Ref({ a, b, m, k, n, aZero: 131, bZero });
      expect(gemmInt8(a, 131, b, bZero, m, k, n, { threads: THREADS })).toEqual(want);
      const prepared = packGemmInt8B(b, bZero, k, n);
      expect(gemmInt8Prepacked(a, 131, prepared, m, { threads: THREADS })).toEqual(want);
      expect(gemmInt8Prepacked(a, 131, prepared, m, { threads: 1 })).toEqual(want);
    }
  });

  it('4-bit GEMV (with and without zero points, K off the block) and NF4 GEMV, batch 1 and 3', () => {
    for (const [K, N, bs, zp, m] of [
      [512, 300, 32, true, 1],
      [200, 77, 64, false, 3],
      [1024, 1000, 128, true, 1],
    ] as const) {
      const w = nbitsWeights(K, N, bs, zp, K + N);
      const x = floats(m * K, K, 4);
      expect(bits(gemvNBits(x, m, w, { threads: THREADS }))).toEqual(bits(gemvNBits(x, m, w, { threads: 1 })));
    }
    for (const [K, N, bs, m] of [
      [256, 200, 64, 1],
      [512, 130, 32, 2],
    ] as const) {
      const w = bnb4Weights(K, N, bs, K + N);
      const x = floats(m * K, N, 4);
      expect(bits(gemvBnb4(x, m, w, { threads: THREADS }))).toEqual(bits(gemvBnb4(x, m, w, { threads: 1 })));
    }
  });

  it('per-channel, per-column and per-tensor quantize past the threading threshold; NaN still named', () => {
    const n = 5 * 52429; // past 2^18, the threshold
    const x = floats(n, 9, 40);
    for (const p of [
      { scale: Float32Array.of(0.05, 0.1, 0.2, 0.07, 0.3), zeroPoint: [0, 3, -9, 127, -128], signed: true, inner: 1 },
      { scale: Float32Array.of(0.11), zeroPoint: [255], signed: false, inner: 1 },
      { scale: Float32Array.of(0.05, 0.1, 0.2, 0.07, 0.3), signed: false, inner: n / 5 },
    ]) {
      const one = quantizeLinearInt8(x, p, undefined, { threads: 1 });
      expect(firstDifference(quantizeLinearInt8(x, p, undefined, { threads: THREADS }), one)).toBe(-1);
    }
    const bad = x.slice();
    bad[200001] = NaN;
    expect(() =>
      quantizeLinearInt8(bad, { scale: Float32Array.of(0.1), signed: true, inner: 1 }, undefined, { threads: THREADS }),
    ).toThrow(/200001/);
  });

  it('int8 conv (its GEMM on threads), and the default count set by setKernelThreads', () => {
    const p = {
      x: bytes(2 * 16 * 12 * 12, 5),
      xDims: [2, 16, 12, 12],
      xZero: 7,
      w: new Int8Array(bytes(24 * 16 * 9, 6).buffer),
      wDims: [24, 16, 3, 3],
      wZero: 0,
      pads: [1, 1, 1, 1],
    };
    const want = convInt8Ref(p);
    expect(convInt8(p, undefined, { threads: THREADS })).toEqual(want);
    setKernelThreads(THREADS);
    try {
      expect(kernelThreads()).toBe(THREADS);
      expect(convInt8(p)).toEqual(want);
    } finally {
      setKernelThreads(undefined);
    }
    expect(() => setKernelThreads(0)).toThrow(/`threads` must be a whole number/);
  });

  it('the interpreter: ConvInteger and MatMulInteger with `threads` give the outputs of one thread', () => {
    const conv = decodeModel(convIntegerModel([1, 8, 10, 10], bytes(8 * 8 * 9, 21), [8, 8, 3, 3], 1, 3, 250));
    const convIn = new Map([['x', makeTensor('uint8', [1, 8, 10, 10], bytes(800, 22))]]);
    const mm = decodeModel(matMulIntegerModel('uint8', new Int8Array(bytes(96 * 80, 23).buffer), 96, 80, 5, -3));
    const mmIn = new Map([['a', makeTensor('uint8', [9, 96], bytes(9 * 96, 24))]]);
    for (const [model, inputs] of [
      [conv, convIn],
      [mm, mmIn],
    ] as const) {
      const one = runModel(model, inputs, { threads: 1 }).get('y');
      const many = runModel(model, inputs, { threads: THREADS }).get('y');
      expect(many?.data).toEqual(one?.data);
    }
  });
});

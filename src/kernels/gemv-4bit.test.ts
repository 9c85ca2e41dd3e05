import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { matMulBnb4Model, matMulNBitsModel } from '../flows/bench-graphs.js';
import { FP4_BNB_TABLE, NF4_TABLE } from '../quant/codebook.js';
import { mulberry32 } from '../quant/prng.js';
import { gemvBnb4Ref, gemvNBitsRef, type Bnb4GemvWeights, type NBitsGemvWeights } from './gemv-4bit.ref.js';

function randomBytes(count: number, seed: number): Uint8Array {
  const u = mulberry32(seed);
  return Uint8Array.from({ length: count }, () => Math.floor(u() * 256));
}

function randomFloats(count: number, seed: number, lo: number, hi: number): Float32Array {
  const u = mulberry32(seed);
  return Float32Array.from({ length: count }, () => lo + (hi - lo) * u());
}

export function nbitsWeights(K: number, N: number, blockSize: number, withZp: boolean, seed: number): NBitsGemvWeights {
  const kBlocks = Math.ceil(K / blockSize);
  return {
    K,
    N,
    blockSize,
    packed: randomBytes(N * kBlocks * (blockSize / 2), seed),
    scales: randomFloats(N * kBlocks, seed + 1, 0.001, 0.1),
    zeroPoints: withZp ? randomBytes(N * Math.ceil(kBlocks / 2), seed + 2) : undefined,
  };
}

export function bnb4Weights(
  K: number,
  N: number,
  blockSize: number,
  table: Float32Array,
  seed: number,
): Bnb4GemvWeights {
  return {
    K,
    N,
    blockSize,
    packed: randomBytes(Math.ceil((N * K) / 2), seed),
    absmax: randomFloats(Math.ceil((N * K) / blockSize), seed + 1, 0.01, 2),
    table,
  };
}

async function ortRun(model: Uint8Array, x: Float32Array, m: number, k: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const out = await s.run({ a: new ort.Tensor('float32', x, [m, k]) });
    return out['y']!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d / scale;
}

describe('4-bit GEMV references against ONNX Runtime', () => {
  // [M, K, N, block]: K off the block (padded last block), N odd, M = 1 and small M.
  const shapes: [number, number, number, number][] = [
    [1, 64, 8, 32],
    [1, 70, 5, 16],
    [3, 200, 7, 64],
    [2, 256, 9, 128],
  ];
  for (const [m, k, n, bs] of shapes)
    for (const zp of [false, true])
      it(`MatMulNBits M=${m} K=${k} N=${n} block ${bs}${zp ? ' zero points' : ''}: within 1e-5 of ORT (accuracy level 0)`, async () => {
        const w = nbitsWeights(k, n, bs, zp, k + n);
        const x = randomFloats(m * k, 7, -1, 1);
        const want = await ortRun(matMulNBitsModel(w, 0), x, m, k);
        expect(maxRelDiff(gemvNBitsRef(x, m, w), want)).toBeLessThan(1e-5);
      });

  const bnbShapes: [number, number, number, number][] = [
    [1, 128, 8, 64],
    [1, 96, 5, 64], // blocks cross rows
    [2, 65, 3, 32], // odd K: rows start mid-byte
    [3, 256, 6, 128],
  ];
  for (const [m, k, n, bs] of bnbShapes)
    for (const [name, table, qt] of [
      ['NF4', NF4_TABLE, 1],
      ['FP4', FP4_BNB_TABLE, 0],
    ] as const)
      it(`MatMulBnb4 ${name} M=${m} K=${k} N=${n} block ${bs}: within 1e-5 of ORT`, async () => {
        const w = bnb4Weights(k, n, bs, table, k * n);
        const x = randomFloats(m * k, 9, -1, 1);
        const want = await ortRun(matMulBnb4Model(w, qt), x, m, k);
        expect(maxRelDiff(gemvBnb4Ref(x, m, w), want)).toBeLessThan(1e-5);
      });
});

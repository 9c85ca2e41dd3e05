import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { runModel } from '../src/interp/run.js';
import { mulberry32 } from '../src/quant/prng.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { qemuAvailable, runOrtAvx2 } from './helpers/ort-avx2.js';

/*
 * DequantizeLinear(8-bit, per channel or per tensor) → MatMul against an ONNX Runtime session:
 * ORT 1.30 fuses it into MatMulNBits (blocks of 32, accuracy_level 4 by default, 0 with
 * session.qdq_matmulnbits_accuracy_level=0), and the interpreter computes that MatMulNBits.
 * Level 4 quantizes A to int8 per block of 32, ~1e-3 away from the float product: a result
 * within 1e-5 of the largest output is the fused product's, and the other level's is not.
 */

const K = 72; // not a multiple of 32: the last block is short
const N = 6;
const M = 3;

function dqModel(dtype: 'int8' | 'uint8', perChannel: boolean, withZero: boolean, seed: number): Uint8Array {
  const r = mulberry32(seed);
  const lo = dtype === 'int8' ? -128 : 0;
  const codes = Array.from({ length: K * N }, () => lo + Math.floor(r() * 256));
  const w = makeTensor(dtype, [K, N], dtype === 'int8' ? Int8Array.from(codes) : Uint8Array.from(codes));
  const dims = perChannel ? [N] : [];
  const count = perChannel ? N : 1;
  const scale = makeTensor(
    'float32',
    dims,
    Float32Array.from({ length: count }, () => 0.001 + r() * 0.01),
  );
  const zeros = Array.from({ length: count }, () => lo + Math.floor(r() * 256));
  const zp = makeTensor(dtype, dims, dtype === 'int8' ? Int8Array.from(zeros) : Uint8Array.from(zeros));
  return encodeModel(
    makeModel({
      inputs: [{ name: 'a', dtype: 'float32', dims: [M, K] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [M, N] }],
      initializers: withZero ? { w, s: scale, z: zp } : { w, s: scale },
      nodes: [
        {
          opType: 'DequantizeLinear',
          inputs: withZero ? ['w', 's', 'z'] : ['w', 's'],
          outputs: ['wd'],
          attributes: perChannel ? { axis: 1 } : {},
        },
        { opType: 'MatMul', inputs: ['a', 'wd'], outputs: ['y'], name: 'mm' },
      ],
      opsets: { '': 21 },
      irVersion: 10,
    }),
  );
}

async function ortAt(bytes: Uint8Array, a: Float32Array, level: 0 | 4): Promise<Float32Array> {
  const options: ort.InferenceSession.SessionOptions =
    level === 4 ? {} : { extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };
  const session = await ort.InferenceSession.create(bytes, options);
  const y = (await session.run({ a: new ort.Tensor('float32', a, [M, K]) })).y!.data as Float32Array;
  await session.release();
  return y;
}

function relDiff(x: Float32Array, y: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs((x[i] as number) - (y[i] as number)));
    scale = Math.max(scale, Math.abs(y[i] as number));
  }
  return diff / scale;
}

describe('DequantizeLinear(8-bit) → MatMul gives the MatMulNBits ORT fuses it into', () => {
  const cases = [
    ['int8', true, false],
    ['int8', true, true],
    ['uint8', true, true],
    ['uint8', false, true],
    ['int8', false, false],
  ] as const;
  for (const [dtype, perChannel, withZero] of cases) {
    it(`${dtype} ${perChannel ? 'per channel' : 'per tensor'}${withZero ? ', zero point' : ''}: levels 4 and 0`, async () => {
      const bytes = dqModel(dtype, perChannel, withZero, codesSeed(dtype, perChannel, withZero));
      const r = mulberry32(9);
      const a = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
      const feeds = new Map<string, Tensor>([['a', makeTensor('float32', [M, K], a)]]);
      const ours = (level: 0 | 4) =>
        runModel(decodeModel(bytes), feeds, { qdqAccuracyLevel: level }).get('y')!.data as Float32Array;
      const want4 = await ortAt(bytes, a, 4);
      const want0 = await ortAt(bytes, a, 0);
      expect(relDiff(want4, want0)).toBeGreaterThan(1e-4);
      expect(relDiff(ours(4), want4)).toBeLessThanOrEqual(1e-5);
      expect(relDiff(ours(0), want0)).toBeLessThanOrEqual(1e-5);
    });
  }
  // ORT's 8-bit int8 path on an AVX2-only CPU (no VNNI): full-range uint8 weight codes against
  // int8 A codes, the case where a kernel pairing u8×s8 products in int16 would saturate.
  it.skipIf(!qemuAvailable())('uint8 per channel with zero point: ORT on an emulated AVX2 CPU too', async () => {
    const bytes = dqModel('uint8', true, true, codesSeed('uint8', true, true));
    const r = mulberry32(9);
    const a = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
    const want = runOrtAvx2(bytes, { a: makeTensor('float32', [M, K], a) }).y!.data as Float32Array;
    const feeds = new Map<string, Tensor>([['a', makeTensor('float32', [M, K], a)]]);
    const ours = runModel(decodeModel(bytes), feeds).get('y')!.data as Float32Array;
    expect(relDiff(ours, want)).toBeLessThanOrEqual(1e-5);
    expect(relDiff(ours, await ortAt(bytes, a, 4))).toBeLessThanOrEqual(1e-5);
  });
});

function codesSeed(dtype: string, perChannel: boolean, withZero: boolean): number {
  return (dtype === 'int8' ? 1 : 2) + (perChannel ? 10 : 0) + (withZero ? 100 : 0);
}

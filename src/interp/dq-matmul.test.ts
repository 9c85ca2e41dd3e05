import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { mulberry32 } from '../quant/prng.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeTensor } from '../tensor/tensor.js';
import { dqMatMulSites, runDqMatMul } from './dq-matmul.js';
import { opContext } from './op.js';
import { DequantizeLinear } from './ops/dequantize-linear.js';
import { MatMul } from './ops/linear.js';
import { modelFromProto } from '../graph/from-onnx.js';

// The MatMulNBits path of DequantizeLinear(4-bit, blocked along K) → MatMul against the two
// plain ops run one after the other: the same fp32 weights, the same sums.

function case4(dtype: 'int4' | 'uint4', K: number, N: number, bs: number, seed: number) {
  const r = mulberry32(seed);
  const kBlocks = Math.ceil(K / bs);
  const lo = dtype === 'int4' ? -8 : 0;
  const codes = Array.from({ length: K * N }, () => lo + Math.floor(r() * 16));
  const w = makeTensor(dtype, [K, N], dtype === 'int4' ? Int8Array.from(codes) : Uint8Array.from(codes));
  const scale = makeTensor(
    'float32',
    [kBlocks, N],
    Float32Array.from({ length: kBlocks * N }, () => 0.01 + r() * 0.1),
  );
  const zp =
    dtype === 'uint4'
      ? makeTensor(
          'uint4',
          [kBlocks, N],
          Uint8Array.from({ length: kBlocks * N }, () => Math.floor(r() * 16)),
        )
      : undefined;
  const a = makeTensor(
    'float32',
    [2, 3, K],
    Float32Array.from({ length: 6 * K }, () => r() * 2 - 1),
  );
  return { a, w, scale, zp };
}

const plain = (a: Tensor, w: Tensor, scale: Tensor, zp: Tensor | undefined, bs: number) => {
  const deq = DequantizeLinear([w, scale, zp], opContext({ axis: 0, block_size: bs }))[0] as Tensor;
  return MatMul([a, deq], opContext())[0] as Tensor;
};

describe('DequantizeLinear(4-bit) → MatMul on the MatMulNBits kernel', () => {
  for (const [dtype, K, bs] of [
    ['int4', 64, 32],
    ['uint4', 40, 16],
    ['int4', 33, 16],
  ] as const) {
    it(`${dtype}, K = ${K}, block ${bs}: equals DequantizeLinear then MatMul within fp32 rounding`, () => {
      const { a, w, scale, zp } = case4(dtype, K, 5, bs, K + bs);
      const got = runDqMatMul(a, w, scale, zp, bs, opContext()) as Tensor;
      const want = plain(a, w, scale, zp, bs);
      expect(got.dims).toEqual([2, 3, 5]);
      const g = got.data as Float32Array;
      const e = want.data as Float32Array;
      for (let i = 0; i < e.length; i++) expect(Math.abs((g[i] as number) - (e[i] as number))).toBeLessThan(1e-6);
    });
  }

  it('finds the MatMuls ORT fuses: 4/8-bit weight blocked along K, per channel or per tensor, B its only use', () => {
    const { w, scale } = case4('int4', 32, 4, 16, 1);
    const w8 = makeTensor('int8', [32, 4], new Int8Array(128).fill(3));
    const f32 = (dims: number[]) =>
      makeTensor('float32', dims, new Float32Array(dims.reduce((p, d) => p * d, 1)).fill(1));
    const out = (name: string) => ({ name, dtype: 'float32' as const, dims: [1, 4] });
    const model = modelFromProto(
      makeModel({
        inputs: [{ name: 'a', dtype: 'float32', dims: [1, 32] }],
        outputs: ['y', 'z', 'u', 'v', 'x', 'x2'].map(out),
        initializers: { w, w8, s: scale, s1: f32([4]), s0: f32([]), r: f32([32]) },
        nodes: [
          { opType: 'DequantizeLinear', inputs: ['w', 's'], outputs: ['wd'], attributes: { axis: 0, block_size: 16 } },
          { opType: 'MatMul', inputs: ['a', 'wd'], outputs: ['y'], name: 'blocked' },
          { opType: 'DequantizeLinear', inputs: ['w8', 's1'], outputs: ['wc'], attributes: { axis: 1 } },
          { opType: 'MatMul', inputs: ['a', 'wc'], outputs: ['z'], name: 'per-channel' },
          { opType: 'DequantizeLinear', inputs: ['w8', 's0'], outputs: ['wt'] },
          { opType: 'MatMul', inputs: ['a', 'wt'], outputs: ['u'], name: 'per-tensor' },
          { opType: 'DequantizeLinear', inputs: ['w8', 'r'], outputs: ['wr'], attributes: { axis: 0 } },
          { opType: 'MatMul', inputs: ['a', 'wr'], outputs: ['v'], name: 'per-row' },
          { opType: 'DequantizeLinear', inputs: ['w8', 's1'], outputs: ['ws'], attributes: { axis: 1 } },
          { opType: 'MatMul', inputs: ['a', 'ws'], outputs: ['x'], name: 'shared-1' },
          { opType: 'MatMul', inputs: ['a', 'ws'], outputs: ['x2'], name: 'shared-2' },
        ],
      }),
    );
    const sites = dqMatMulSites(model.graph);
    expect([...sites.keys()].map((n) => n.name)).toEqual(['blocked', 'per-channel', 'per-tensor']);
    expect([...sites.values()].map((s) => s.blockSize)).toEqual([16, 32, 32]);
  });
});

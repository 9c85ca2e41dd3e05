import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { runModel } from '../src/interp/run.js';
import { encodeFloat, toFloat64 } from '../src/interp/values.js';
import { mulberry32 } from '../src/quant/prng.js';
import type { Tensor } from '../src/tensor/tensor.js';

/*
 * MatMulNBits with float zero points (HQQ and q4-k write them) against ONNX Runtime's own
 * operator. With A = I the product has one nonzero term per output, so Y is the dequantized
 * weight itself and must match bit for bit (this pins ORT's two-rounding dequantization,
 * fp32(fp32(code·scale) + fp32(−scale·zero))); with a random A, within 1e-5 of the output's
 * largest magnitude (ORT sums in fp32, the interpreter in float64). accuracy_level 4 must not
 * change the result: ORT never takes its int8 path for these weights, and its int8 path would
 * miss by ~1e-3.
 */

const K = 40; // not a multiple of the block: the last block is short
const N = 6;
const BS = 16;
const K_BLOCKS = Math.ceil(K / BS);

function weights(bits: number, seed: number): Record<string, Tensor> {
  const r = mulberry32(seed);
  const blob = (BS * bits) / 8;
  const qmax = (1 << bits) - 1;
  return {
    b: {
      dtype: 'uint8',
      dims: [N, K_BLOCKS, blob],
      data: Uint8Array.from({ length: N * K_BLOCKS * blob }, () => Math.floor(r() * 256)),
    },
    s: {
      dtype: 'float32',
      dims: [N * K_BLOCKS],
      data: Float32Array.from({ length: N * K_BLOCKS }, () => 0.01 + r() * 0.3),
    },
    z: { dtype: 'float32', dims: [N * K_BLOCKS], data: Float32Array.from({ length: N * K_BLOCKS }, () => r() * qmax) },
    bias: { dtype: 'float32', dims: [N], data: Float32Array.from({ length: N }, () => r() - 0.5) },
  };
}

function model(bits: number, level: number, init: Record<string, Tensor>, M: number, withBias: boolean): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [
        {
          opType: 'MatMulNBits',
          domain: 'com.microsoft',
          inputs: ['a', 'b', 's', 'z', ...(withBias ? ['', 'bias'] : [])],
          outputs: ['y'],
          attributes: { K, N, bits, block_size: BS, accuracy_level: level },
        },
      ],
      inputs: [{ name: 'a', dtype: 'float32', dims: [M, K] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [M, N] }],
      initializers: withBias ? init : { b: init.b!, s: init.s!, z: init.z! },
      opsets: { '': 21, 'com.microsoft': 1 },
      irVersion: 10,
    }),
  );
}

async function both(bytes: Uint8Array, a: Float32Array, M: number): Promise<{ got: Float32Array; want: Float32Array }> {
  const session = await ort.InferenceSession.create(bytes);
  const want = (await session.run({ a: new ort.Tensor('float32', a, [M, K]) })).y!.data as Float32Array;
  await session.release();
  const feeds = new Map<string, Tensor>([['a', { dtype: 'float32', dims: [M, K], data: a }]]);
  const got = runModel(decodeModel(bytes), feeds).get('y')!.data as Float32Array;
  return { got, want };
}

const identity = () => {
  const a = new Float32Array(K * K);
  for (let k = 0; k < K; k++) a[k * K + k] = 1;
  return a;
};

describe('MatMulNBits with float zero points gives ORT’s outputs', () => {
  for (const bits of [2, 4])
    for (const level of [0, 4]) {
      it(`bits ${bits}, accuracy_level ${level}: A = I gives ORT's dequantized weight bit for bit`, async () => {
        const { got, want } = await both(model(bits, level, weights(bits, bits), K, false), identity(), K);
        expect(Array.from(got)).toEqual(Array.from(want));
      });
      it(`bits ${bits}, accuracy_level ${level}: random A, bias, within 1e-5`, async () => {
        const r = mulberry32(7 + bits);
        const M = 5;
        const a = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
        const { got, want } = await both(model(bits, level, weights(bits, 3 * bits), M, true), a, M);
        let scale = 0;
        let worst = 0;
        for (let i = 0; i < want.length; i++) {
          scale = Math.max(scale, Math.abs(want[i] as number));
          worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
        }
        expect(worst).toBeLessThanOrEqual(1e-5 * scale);
      });
    }
  it('float16 A, scales and zero points: within one float16 ulp of ORT’s each', async () => {
    const r = mulberry32(11);
    const M = 4;
    const w = weights(4, 5);
    const half = (t: Tensor): Tensor => ({ ...t, dtype: 'float16', data: encodeFloat('float16', toFloat64(t)) });
    const a = half({ dtype: 'float32', dims: [M, K], data: Float32Array.from({ length: M * K }, () => r() * 2 - 1) });
    const bytes = encodeModel(
      makeModel({
        nodes: [
          {
            opType: 'MatMulNBits',
            domain: 'com.microsoft',
            inputs: ['a', 'b', 's', 'z'],
            outputs: ['y'],
            attributes: { K, N, bits: 4, block_size: BS },
          },
        ],
        inputs: [{ name: 'a', dtype: 'float16', dims: [M, K] }],
        outputs: [{ name: 'y', dtype: 'float16', dims: [M, N] }],
        initializers: { b: w.b!, s: half(w.s!), z: half(w.z!) },
        opsets: { '': 21, 'com.microsoft': 1 },
        irVersion: 10,
      }),
    );
    const session = await ort.InferenceSession.create(bytes);
    const y = (await session.run({ a: new ort.Tensor('float16', a.data as Uint16Array, [M, K]) })).y!;
    await session.release();
    const want = toFloat64({ dtype: 'float16', dims: [M, N], data: y.data as Uint16Array });
    const got = toFloat64(runModel(decodeModel(bytes), new Map([['a', a]])).get('y')!);
    for (let i = 0; i < want.length; i++) {
      const v = Math.abs(want[i] as number);
      const ulp = 2 ** (Math.max(Math.floor(Math.log2(v || 2 ** -14)), -14) - 10);
      expect(Math.abs((got[i] as number) - (want[i] as number))).toBeLessThanOrEqual(ulp);
    }
  });
  it('g_idx (4-bit): with float zero points and without, A = I gives ORT’s dequantized weight bit for bit', async () => {
    const r = mulberry32(21);
    const w = weights(4, 8);
    const g: Tensor = {
      dtype: 'int32',
      dims: [K],
      data: Int32Array.from({ length: K }, () => Math.floor(r() * K_BLOCKS)),
    };
    for (const zero of [true, false]) {
      const bytes = encodeModel(
        makeModel({
          nodes: [
            {
              opType: 'MatMulNBits',
              domain: 'com.microsoft',
              inputs: ['a', 'b', 's', zero ? 'z' : '', 'g'],
              outputs: ['y'],
              attributes: { K, N, bits: 4, block_size: BS },
            },
          ],
          inputs: [{ name: 'a', dtype: 'float32', dims: [K, K] }],
          outputs: [{ name: 'y', dtype: 'float32', dims: [K, N] }],
          initializers: zero ? { b: w.b!, s: w.s!, z: w.z!, g } : { b: w.b!, s: w.s!, g },
          opsets: { '': 21, 'com.microsoft': 1 },
          irVersion: 10,
        }),
      );
      const { got, want } = await both(bytes, identity(), K);
      expect(Array.from(got)).toEqual(Array.from(want));
    }
  });
  it('g_idx with uint8 zero points: refused (ORT reads them as 8), naming the node and the way out', () => {
    const w = weights(4, 9);
    const bytes = encodeModel(
      makeModel({
        nodes: [
          {
            opType: 'MatMulNBits',
            domain: 'com.microsoft',
            name: 'mm_gidx',
            inputs: ['a', 'b', 's', 'z', 'g'],
            outputs: ['y'],
            attributes: { K, N, bits: 4, block_size: BS },
          },
        ],
        inputs: [{ name: 'a', dtype: 'float32', dims: [1, K] }],
        outputs: [{ name: 'y', dtype: 'float32', dims: [1, N] }],
        initializers: {
          b: w.b!,
          s: w.s!,
          z: { dtype: 'uint8', dims: [N * Math.ceil(K_BLOCKS / 2)], data: new Uint8Array(N * Math.ceil(K_BLOCKS / 2)) },
          g: { dtype: 'int32', dims: [K], data: new Int32Array(K) },
        },
        opsets: { '': 21, 'com.microsoft': 1 },
        irVersion: 10,
      }),
    );
    const feeds = new Map([['a', { dtype: 'float32', dims: [1, K], data: new Float32Array(K) } as Tensor]]);
    expect(() => runModel(decodeModel(bytes), feeds)).toThrow(
      expect.objectContaining({ code: 'QK_UNSUPPORTED_OP', message: expect.stringContaining("'mm_gidx'") }),
    );
  });
  it('8-bit codes with float zero points: refused, as ORT refuses them', async () => {
    const bytes = model(8, 0, weights(8, 1), 2, false);
    await expect(
      ort.InferenceSession.create(bytes).then((s) =>
        s.run({ a: new ort.Tensor('float32', new Float32Array(2 * K), [2, K]) }),
      ),
    ).rejects.toThrow();
    expect(() =>
      runModel(
        decodeModel(bytes),
        new Map([['a', { dtype: 'float32', dims: [2, K], data: new Float32Array(2 * K) } as Tensor]]),
      ),
    ).toThrow(expect.objectContaining({ code: 'QK_UNSUPPORTED_OP' }));
  });
});

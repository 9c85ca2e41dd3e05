import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import { quantizeWeightPerChannelU8, quantizeWeightPerTensor } from './int8-quant.js';
import { mulberry32 } from './prng.js';

/*
 * ONNX Runtime as the oracle for the weight forms of the former transformers.js recipe:
 * DynamicQuantizeLinear computes u8 asymmetric parameters over a whole tensor with the formula
 * ORT's quantizer uses for QUInt8 weights (range widened to 0, scale = span/255, zero point
 * rounded half to even), so each column of quantizeWeightPerChannelU8 must equal it run on that
 * column alone; per-tensor s8 codes must equal QuantizeLinear at scale max|w|/127 (or /64).
 */

async function dynamicQuantizeLinear(x: Float32Array): Promise<{ codes: Uint8Array; scale: number; zp: number }> {
  const model = makeModel({
    nodes: [{ opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['q', 's', 'z'] }],
    inputs: [{ name: 'x', dtype: 'float32', dims: [x.length] }],
    outputs: [
      { name: 'q', dtype: 'uint8', dims: [x.length] },
      { name: 's', dtype: 'float32', dims: [] },
      { name: 'z', dtype: 'uint8', dims: [] },
    ],
    opsets: { '': 13 },
  });
  const session = await ort.InferenceSession.create(encodeModel(model));
  const r = await session.run({ x: new ort.Tensor('float32', x, [x.length]) });
  return {
    codes: r.q!.data as Uint8Array,
    scale: (r.s!.data as Float32Array)[0] as number,
    zp: (r.z!.data as Uint8Array)[0] as number,
  };
}

async function quantizeLinear(x: Float32Array, scale: number): Promise<Int8Array> {
  const model = makeModel({
    nodes: [{ opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['q'] }],
    inputs: [{ name: 'x', dtype: 'float32', dims: [x.length] }],
    outputs: [{ name: 'q', dtype: 'int8', dims: [x.length] }],
    initializers: {
      s: { dtype: 'float32', dims: [], data: Float32Array.of(scale) },
      z: { dtype: 'int8', dims: [], data: new Int8Array(1) },
    },
    opsets: { '': 13 },
  });
  const session = await ort.InferenceSession.create(encodeModel(model));
  const r = await session.run({ x: new ort.Tensor('float32', x, [x.length]) });
  return r.q!.data as Int8Array;
}

/** [K, N] weights, column n shifted by an offset of its own so ranges differ (one all-positive, one all-zero). */
function weights(K: number, N: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const w = new Float32Array(K * N);
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++)
      w[k * N + n] = n === N - 1 ? 0 : (rand() * 2 - 1) * (n + 1) * 0.05 + (n === 0 ? 0.3 : 0);
  return w;
}

const column = (w: Float32Array, K: number, N: number, n: number) =>
  Float32Array.from({ length: K }, (_, k) => w[k * N + n] as number);

describe('former-recipe int8 weight forms, pinned to ONNX Runtime', () => {
  it('u8 per channel: each column equals DynamicQuantizeLinear on it (codes, scale, zero point)', async () => {
    const [K, N] = [67, 6];
    const w = weights(K, N, 5);
    const got = quantizeWeightPerChannelU8(w, [K, N], 1, 'w');
    for (let n = 0; n < N; n++) {
      const ref = await dynamicQuantizeLinear(column(w, K, N, n));
      // ORT gives an all-zero tensor scale 0; quant/affine.ts gives it 1 (both code every value as the zero point).
      if (ref.scale !== 0) expect(got.scales[n]).toBe(ref.scale);
      expect(got.zeroPoints[n]).toBe(ref.zp);
      expect(column(Float32Array.from(got.codes), K, N, n)).toEqual(Float32Array.from(ref.codes));
    }
  });

  it('s8 per tensor: codes equal QuantizeLinear at max|w|/127 (full) and max|w|/64 (seven-bit)', async () => {
    const [K, N] = [40, 5];
    const w = weights(K, N, 9);
    const amax = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (const [form, q] of [
      ['full', 127],
      ['seven-bit', 64],
    ] as const) {
      const got = quantizeWeightPerTensor(w, [K, N], 'w', form);
      expect(got.scale).toBe(Math.fround(amax / q));
      expect(got.codes).toEqual(await quantizeLinear(w, got.scale));
      expect(Math.max(...got.codes.map(Math.abs))).toBe(q);
    }
  });
});

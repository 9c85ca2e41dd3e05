import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../io/onnx/proto.js';
import { makeModel } from '../io/onnx/build.js';
import { makeTensor } from '../tensor/tensor.js';
import { fakeQuantLsq, fakeQuantSte, maxScale } from './fake-quant.js';
import { pactActivationQuantizer } from './quantizers.js';
import { tf, useBackend } from './tf.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** ONNX Runtime's own QuantizeLinear → DequantizeLinear (uint8, per tensor) on `x`. */
async function ortQdq(x: Float32Array, scale: number, zeroPoint: number): Promise<Float32Array> {
  const proto = makeModel({
    nodes: [
      { opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['q'] },
      { opType: 'DequantizeLinear', inputs: ['q', 's', 'z'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dtype: 'float32', dims: [x.length] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: [x.length] }],
    initializers: {
      s: makeTensor('float32', [], Float32Array.of(scale)),
      z: makeTensor('uint8', [], Uint8Array.of(zeroPoint)),
    },
    opsets: { '': 13 },
    irVersion: 8,
  });
  const session = await ort.InferenceSession.create(encodeModel(proto));
  const out = await session.run({ x: new ort.Tensor('float32', x, [x.length]) });
  return out.y?.data as Float32Array;
}

describe('fake quantization', () => {
  it('equals ONNX Runtime QuantizeLinear/DequantizeLinear, ties and saturation included', async () => {
    const scale = Math.fround(0.05);
    for (const zeroPoint of [0, 3, 128]) {
      const x = new Float32Array(401);
      // Steps of s/4 hit every tie (x/s = k + 0.5), both clip ends and beyond.
      for (let i = 0; i < x.length; i++) x[i] = Math.fround((i - 200) * scale * 0.25 * 4 - 3);
      for (let i = 0; i < 40; i++) x[i] = Math.fround((i - 20 + 0.5) * scale);
      const ours = tf.tidy(() => fakeQuantSte(tf.tensor(x), { scale, zeroPoint, qmin: 0, qmax: 255 }).dataSync());
      expect(Array.from(ours)).toEqual(Array.from(await ortQdq(x, scale, zeroPoint)));
    }
  });

  it('STE: the gradient is 1 inside the clip range and 0 outside', () => {
    const g = { scale: 0.5, zeroPoint: 10, qmin: 0, qmax: 255 };
    // Clip range [(0 − 10)·0.5, (255 − 10)·0.5] = [−5, 122.5].
    const x = tf.tensor([-6, -5, -4.9, 0, 100, 122.5, 122.6, 200]);
    const grad = tf.grad((t: tf.Tensor) => tf.sum(fakeQuantSte(t, g)))(x);
    expect(Array.from(grad.dataSync())).toEqual([0, 1, 1, 1, 1, 1, 0, 0]);
  });

  it('per-channel max scale: max|w| / qmax per output channel, 1 for an all-zero channel', () => {
    const w = tf.tensor([1, -4, 2, 0, 0, 0, 0.5, 0.25, -0.7], [3, 3]);
    expect(Array.from(maxScale(w, 0, 7).dataSync())).toEqual([4 / 7, 1, 0.7 / 7].map(Math.fround));
  });

  it('LSQ: value, input gradient and step gradient as Esser et al. derive them (hand-worked)', () => {
    // s = 0.5, z = 0, grid [−3, 3] (3-bit symmetric): v = x/s = [−8, −1.3, 0.6, 1.5, 2.2, 9].
    const x = tf.tensor([-4, -0.65, 0.3, 0.75, 1.1, 4.5]);
    const s = tf.scalar(0.5);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(fakeQuantLsq(a, b, 0, -3, 3, 1));
    const y = fakeQuantLsq(x, s, 0, -3, 3, 1).dataSync();
    expect(Array.from(y)).toEqual([-1.5, -0.5, 0.5, 1, 1, 1.5]);
    const [gx, gs] = tf.grads(f)([x, s]);
    expect(Array.from(gx?.dataSync() ?? [])).toEqual([0, 1, 1, 1, 1, 0]);
    // ∂y/∂s: Qn = −3 below, round(v) − v inside, Qp = 3 above (round half to even: 1.5 → 2).
    const expected = -3 + (-1 - -1.3) + (1 - 0.6) + (2 - 1.5) + (2 - 2.2) + 3;
    expect(gs?.dataSync()[0]).toBeCloseTo(expected, 5);
  });

  it('PACT: α receives the gradient of the values it clips, plus its L2 term', () => {
    const q = pactActivationQuantizer({ momentum: 0.9, name: 'a', decay: 0.01 });
    q.apply(tf.tensor([0, 1, 2, 4]), 'observe');
    q.endObservation();
    const alpha = q.variables[0] as tf.Variable;
    alpha.assign(tf.scalar(2));
    const { grads } = tf.variableGrads(
      () => tf.add(tf.sum(q.apply(tf.tensor([0.5, 1, 3, 5]), 'train')), q.penalty?.() ?? tf.scalar(0)) as tf.Scalar,
    );
    // Two inputs above α (3, 5) pass their gradient to α; L2: 2 · 0.01 · α = 0.04.
    expect(grads[alpha.name]?.dataSync()[0]).toBeCloseTo(2.04, 5);
  });
});

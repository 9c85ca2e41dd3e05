import { beforeAll, describe, expect, it } from 'vitest';
import { BlockwiseAdam } from './tf-adam8bit.js';
import { tf, useBackend } from './tf.js';

/** A seeded softmax regression, 5000 weights (over min8bitSize) and a bias, trained by `opt`. */
function train(opt: tf.Optimizer, steps: number): number {
  const x = tf.randomNormal([64, 100], 0, 1, 'float32', 1);
  const labels = tf.randomUniform([64], 0, 50, 'int32', 2);
  const y = tf.oneHot(labels, 50);
  const w = tf.variable(tf.zeros([100, 50]));
  const b = tf.variable(tf.zeros([50]));
  const loss = () => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, w), b)) as tf.Scalar;
  for (let t = 0; t < steps; t++) opt.minimize(loss);
  const final = loss().dataSync()[0] as number;
  tf.dispose([x, labels, y, w, b]);
  return final;
}

describe('BlockwiseAdam as a TensorFlow.js optimizer', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  // Loss after 20 steps: the plumbing (tf variables in, gradients, assignment) is what is tested
  // here; adam8bit.test.ts pins the 8-bit state's final loss against 32-bit state.
  it("32-bit state follows tf.train.adam's trajectory; 8-bit state stays within 5 % of it", () => {
    const cfg = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-7 };
    const ref = train(tf.train.adam(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps), 20);
    const ours32 = new BlockwiseAdam(cfg, 32);
    expect(Math.abs(train(ours32, 20) / ref - 1)).toBeLessThan(1e-4);
    const ours8 = new BlockwiseAdam(cfg, 8);
    expect(Math.abs(train(ours8, 20) / ref - 1)).toBeLessThan(0.05);
    // 5000 weights in 8 bits (two absmax per block), the 50-element bias in 32.
    expect(ours8.stateBytes()).toBe(2 * 5000 + 8 * 3 + 8 * 50);
    expect(ours32.stateBytes()).toBe(8 * 5050);
  });
});

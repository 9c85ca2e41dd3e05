import { beforeAll, describe, expect, it } from 'vitest';
import { trainLoop, type TrainDataset } from './loop.js';
import { crossEntropy } from './losses.js';
import { lsqWeightQuantizer, mseStep } from './quantizers.js';
import { tf, useBackend } from './tf.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Plain-JS squared rounding error of one channel at step s on the symmetric grid [−qmax, qmax]. */
function roundingError(w: readonly number[], s: number, qmax: number): number {
  let e = 0;
  for (const x of w) {
    const q = Math.min(qmax, Math.max(-qmax, Math.round(x / s)));
    e += (q * s - x) ** 2;
  }
  return e;
}

describe('LSQ step initialisation', () => {
  it('mse: an exactly representable channel keeps max|w|/qmax; an outlier channel gets a smaller clip with less error', () => {
    // Channel 0 lies on the max grid (step 0.1, codes 7, −3, 1, 0…): no error, nothing to gain.
    // Channel 1: an outlier at 1 and eight values ±0.11, which round to ±1/7 at the max step
    // (error 0.0086 in all); clipping at 0.96 costs the outlier 0.0016 and rounds them better.
    const ch0 = [0.7, -0.3, 0.1, 0, 0, 0, 0, 0, 0];
    const ch1 = [1, 0.11, -0.11, 0.11, -0.11, 0.11, -0.11, 0.11, -0.11];
    const w = tf.tensor2d([ch0, ch1]);
    const s = mseStep(w, 0, 7).dataSync();
    expect(s[0]).toBeCloseTo(0.1, 6);
    const s1 = s[1] as number;
    expect(s1).toBeCloseTo(0.96 / 7, 6);
    expect(roundingError(ch1, s1, 7)).toBeLessThan(roundingError(ch1, 1 / 7, 7));
    // No candidate clip of the search (0.3 … 1 × max, 36 of them) does better.
    for (let k = 0; k < 36; k++)
      expect(roundingError(ch1, s1, 7)).toBeLessThanOrEqual(roundingError(ch1, (1 - (0.7 * k) / 35) / 7, 7) + 1e-12);
  });

  it('mean: 2·mean|w|/√qmax per channel (Esser et al. 2020), hand-worked', () => {
    const w = tf.tensor2d([
      [0.5, -1.5],
      [0.25, 0.25],
    ]);
    const q = lsqWeightQuantizer({ dims: [2, 2], axis: 0, qmax: 4 }, w, 'w', 'mean');
    // mean|w| = 1 and 0.25; ×2/√4 = 1 and 0.25.
    expect(Array.from((q.variables[0] as tf.Variable).dataSync())).toEqual([1, 0.25]);
    tf.dispose([w, ...q.variables]);
  });
});

describe('training loop: parameter groups', () => {
  // A two-class linear classifier over four fixed examples.
  const xs = [
    [1, 0.5],
    [-0.5, 1],
    [0.25, -1],
    [-1, -0.25],
  ];
  const ys = [0, 1, 0, 1];
  const data: TrainDataset = {
    size: 4,
    batch: (idx) => ({
      inputs: { x: tf.tensor2d(Array.from(idx, (i) => xs[i] as number[])) },
      targets: tf.tensor1d(
        Array.from(idx, (i) => ys[i] as number),
        'int32',
      ),
    }),
  };
  const run = (groups: 'none' | 'same-lr' | 'frozen-then-slow') => {
    const w = tf.variable(tf.tensor2d([0.1, -0.2, 0.3, 0.05], [2, 2]));
    const b = tf.variable(tf.tensor1d([0.01, -0.01]));
    const main = tf.train.adam(0.05);
    const other = tf.train.adam(groups === 'same-lr' ? 0.05 : 0.005);
    const trajectory: number[][] = [];
    trainLoop(
      {
        variables: () => (groups === 'none' ? [w, b] : [w]),
        forward: (f) => tf.add(tf.matMul(f.x as tf.Tensor, w), b),
      },
      data,
      {
        epochs: 3,
        batchSize: 2,
        seed: 1,
        optimizer: main,
        groups:
          groups === 'none'
            ? undefined
            : [{ optimizer: other, variables: () => [b], from: groups === 'same-lr' ? 0 : 2 }],
        loss: crossEntropy,
        onStep: () => trajectory.push(Array.from(b.dataSync())),
      },
    );
    const out = { w: Array.from(w.dataSync()), b: Array.from(b.dataSync()), trajectory };
    tf.dispose([w, b]);
    main.dispose();
    other.dispose();
    return out;
  };

  it('two Adams at one rate train exactly as one Adam over all the variables', () => {
    const one = run('none');
    const two = run('same-lr');
    expect(two.w).toEqual(one.w);
    expect(two.b).toEqual(one.b);
  });

  it('a group stays put before its first step, then moves at its own rate', () => {
    const one = run('none');
    const slow = run('frozen-then-slow');
    expect(slow.trajectory[0]).toEqual([0.01, -0.01].map(Math.fround));
    expect(slow.trajectory[1]).toEqual([0.01, -0.01].map(Math.fround));
    // Adam's first update is ±lr per element: 0.005 here against the single optimizer's 0.05.
    const moved = (slow.trajectory[2] as number[]).map((v, i) => Math.abs(v - ([0.01, -0.01][i] as number)));
    for (const m of moved) expect(m).toBeCloseTo(0.005, 4);
    expect(Math.abs((one.trajectory[0] as number[])[0]! - 0.01)).toBeCloseTo(0.05, 4);
  });
});

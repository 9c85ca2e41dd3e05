import { mulberry32 } from '../quant/prng.js';
import type { LossFn } from './losses.js';
import { tf } from './tf.js';

/*
 * The training loop: seeded shuffles, mini-batches, one optimizer step per batch, a callback per
 * step. Graph-free: the model is a forward function over tf tensors and the variables it trains.
 * Deterministic for a seed on one backend (tfjs's CPU kernels are sequential; the order of the
 * examples is the only randomness).
 */

export interface Batch {
  /** The model's inputs by name. */
  readonly inputs: Readonly<Record<string, tf.Tensor>>;
  readonly targets: tf.Tensor;
}

export interface TrainDataset {
  readonly size: number;
  /** The examples at `indices` as tensors (the loop disposes them after the step). */
  batch(indices: Int32Array): Batch;
}

export interface TrainableModel {
  /** What the optimizer updates (weights, and learned quantizer parameters). */
  variables(): tf.Variable[];
  forward(inputs: Readonly<Record<string, tf.Tensor>>): tf.Tensor;
  /** Extra loss terms (regularizers), added to the task loss. */
  penalty?(): tf.Scalar | undefined;
}

export interface StepInfo {
  readonly step: number;
  readonly steps: number;
  readonly epoch: number;
  readonly loss: number;
  /** Arg-max accuracy of this batch. */
  readonly accuracy: number;
  /** Running means over the epoch so far. */
  readonly epochLoss: number;
  readonly epochAccuracy: number;
}

export interface EpochInfo {
  readonly epoch: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly steps: number;
  readonly seconds: number;
}

/**
 * Variables trained by their own optimizer (their own learning rate: Adam's updates are the size of
 * its rate whatever the gradient's scale), left alone before step `from` (0-based).
 */
export interface ParamGroup {
  readonly optimizer: tf.Optimizer;
  variables(): tf.Variable[];
  readonly from?: number | undefined;
}

export interface TrainLoopOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  /** Trains `model.variables()`. */
  readonly optimizer: tf.Optimizer;
  /** Further variables, each group with its own optimizer (disjoint from `model.variables()`). */
  readonly groups?: readonly ParamGroup[] | undefined;
  readonly loss: LossFn;
  /** Stops after this many steps in all (short runs and tests); default: every batch of every epoch. */
  readonly maxSteps?: number | undefined;
  readonly onStep?: ((s: StepInfo) => void) | undefined;
  readonly onEpoch?: ((e: EpochInfo) => void) | undefined;
  /** Milliseconds since some origin (performance.now in both Node and the browser by default). */
  readonly clock?: (() => number) | undefined;
}

export interface TrainHistory {
  readonly epochs: EpochInfo[];
  /** Loss of every step, in order. */
  readonly stepLoss: number[];
  readonly steps: number;
  readonly examples: number;
  readonly seconds: number;
}

/** A seeded Fisher–Yates permutation of 0 … n − 1. */
export function shuffled(n: number, random: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = p[i] as number;
    p[i] = p[j] as number;
    p[j] = t;
  }
  return p;
}

export function stepsPerEpoch(size: number, batchSize: number): number {
  return Math.ceil(size / batchSize);
}

/** One step of several optimizers: the gradients of every variable at once, each group applying its own. */
function stepGroups(
  objective: () => tf.Scalar,
  main: tf.Optimizer,
  variables: tf.Variable[],
  groups: readonly ParamGroup[],
  step: number,
): tf.Scalar {
  const sets = [{ optimizer: main, variables, active: true }].concat(
    groups.map((g) => ({ optimizer: g.optimizer, variables: g.variables(), active: step >= (g.from ?? 0) })),
  );
  const { value, grads } = tf.variableGrads(
    objective,
    sets.flatMap((x) => x.variables),
  );
  for (const set of sets) {
    if (!set.active || set.variables.length === 0) continue;
    const mine: Record<string, tf.Tensor> = {};
    for (const v of set.variables) {
      const g = grads[v.name];
      if (g) mine[v.name] = g;
    }
    set.optimizer.applyGradients(mine);
  }
  tf.dispose(Object.values(grads));
  return value;
}

export function trainLoop(model: TrainableModel, data: TrainDataset, o: TrainLoopOptions): TrainHistory {
  const clock = o.clock ?? (() => performance.now());
  const random = mulberry32(o.seed);
  const perEpoch = stepsPerEpoch(data.size, o.batchSize);
  const steps = Math.min(o.epochs * perEpoch, o.maxSteps ?? Infinity);
  const history: TrainHistory = { epochs: [], stepLoss: [], steps: 0, examples: 0, seconds: 0 };
  const mutable = history as { steps: number; examples: number; seconds: number };
  const start = clock();
  let step = 0;
  for (let epoch = 0; epoch < o.epochs && step < steps; epoch++) {
    const order = shuffled(data.size, random);
    const epochStart = clock();
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    let epochSteps = 0;
    for (let b = 0; b < perEpoch && step < steps; b++) {
      const batch = data.batch(order.subarray(b * o.batchSize, Math.min(data.size, (b + 1) * o.batchSize)));
      let hits = 0;
      let scored = 0;
      const variables = model.variables();
      const objective = () => {
        const r = o.loss(model.forward(batch.inputs), batch.targets);
        hits = r.correct.dataSync()[0] as number;
        scored = r.count;
        const extra = model.penalty?.();
        return extra ? (tf.add(r.loss, extra) as tf.Scalar) : r.loss;
      };
      const lossValue = o.groups?.length
        ? stepGroups(objective, o.optimizer, variables, o.groups, step)
        : (o.optimizer.minimize(objective, true, variables) as tf.Scalar);
      const loss = lossValue.dataSync()[0] as number;
      tf.dispose([lossValue, ...Object.values(batch.inputs), batch.targets]);
      step++;
      epochSteps++;
      lossSum += loss;
      correct += hits;
      count += scored;
      mutable.examples += batch.targets.shape[0] as number;
      history.stepLoss.push(loss);
      o.onStep?.({
        step,
        steps,
        epoch,
        loss,
        accuracy: scored > 0 ? hits / scored : 0,
        epochLoss: lossSum / epochSteps,
        epochAccuracy: count > 0 ? correct / count : 0,
      });
    }
    const info: EpochInfo = {
      epoch,
      loss: lossSum / Math.max(epochSteps, 1),
      accuracy: count > 0 ? correct / count : 0,
      steps: epochSteps,
      seconds: (clock() - epochStart) / 1000,
    };
    history.epochs.push(info);
    o.onEpoch?.(info);
  }
  mutable.steps = step;
  mutable.seconds = (clock() - start) / 1000;
  return history;
}

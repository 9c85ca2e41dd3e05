import { tf } from './tf.js';

/*
 * Training objectives. classify: logits [B, C] against labels [B]; lm: logits [B, T, V] against
 * next-token targets [B, T] (the window shifted by one). Both: mean cross-entropy in nats, and the
 * count of arg-max hits (accuracy; token accuracy for the LM).
 */

export type TaskKind = 'classify' | 'lm';
export const TASKS: readonly TaskKind[] = ['classify', 'lm'];

export interface LossResult {
  readonly loss: tf.Scalar;
  /** Number of arg-max predictions equal to their target. */
  readonly correct: tf.Scalar;
  /** Number of predictions scored. */
  readonly count: number;
}

export type LossFn = (logits: tf.Tensor, targets: tf.Tensor) => LossResult;

/** Mean softmax cross-entropy of rows of `logits` [N, C] against int32 `targets` [N]. */
export function crossEntropy(logits: tf.Tensor, targets: tf.Tensor): LossResult {
  const classes = logits.shape[logits.rank - 1] as number;
  const rows = tf.reshape(logits, [-1, classes]) as tf.Tensor2D;
  const t = tf.reshape(targets, [-1]) as tf.Tensor1D;
  const picked = tf.sum(tf.mul(tf.logSoftmax(rows), tf.oneHot(t, classes)), -1);
  const count = t.shape[0] as number;
  return {
    loss: tf.neg(tf.mean(picked)) as tf.Scalar,
    correct: tf.sum(tf.cast(tf.equal(tf.argMax(rows, -1), t), 'float32')) as tf.Scalar,
    count,
  };
}

/** The loss of each task: both are cross-entropy over the last axis (the LM's per position). */
export const LOSSES: Readonly<Record<TaskKind, LossFn>> = {
  classify: crossEntropy,
  lm: crossEntropy,
};

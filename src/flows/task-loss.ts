import { OptionError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { rowNll } from './evaluate.js';

/*
 * The task loss of a model on labelled calibration data: the mean cross-entropy of its output rows
 * against a class id per row. A classifier's rows are its samples, scored against labels given
 * with them; a causal LM's rows are the positions of its token windows, each scored against the
 * window's next token (as evaluate.ts windowsNll scores the evaluation windows, which carry one
 * more token: a calibration window of T ids has labels for its first T − 1 positions only).
 */

/** No label: the row is left out of the mean. */
export const NO_LABEL = -1;

/** Mean over the labelled rows of −log softmax(row)[target], float64 with a stable log-sum-exp. */
export function meanCrossEntropy(logits: Float32Array, classes: number, targets: Int32Array): number {
  let total = 0;
  let count = 0;
  for (let r = 0; r < targets.length; r++) {
    const target = targets[r] as number;
    if (target === NO_LABEL) continue;
    total += rowNll(logits, r * classes, classes, target);
    count++;
  }
  return count > 0 ? total / count : 0;
}

/**
 * Next-token targets of `count` windows of T ids (int64 [count, T]): position t of window i is
 * labelled with id t + 1 of the same window; the last position of each window has none.
 */
export function nextTokenTargets(ids: BigInt64Array, count: number, T: number): Int32Array {
  const targets = new Int32Array(count * T).fill(NO_LABEL);
  for (let i = 0; i < count; i++)
    for (let t = 0; t + 1 < T; t++) targets[i * T + t] = Number(ids[i * T + t + 1] as bigint);
  return targets;
}

/** Class ids as numbers, or undefined when the tensor does not hold integers. */
function classIds(labels: Tensor): Int32Array | undefined {
  const d = labels.data;
  if (d instanceof BigInt64Array)
    return Int32Array.from(d, (v) => (v >= -(2n ** 31n) && v < 2n ** 31n ? Number(v) : -2));
  if (d instanceof Int32Array || d instanceof Uint8Array || d instanceof Int8Array || d instanceof Int16Array)
    return Int32Array.from(d);
  return undefined;
}

/** Every target a class of the output; NO_LABEL passes only where a row may go unscored (`unlabelled`). */
function checkRange(
  targets: Int32Array,
  classes: number,
  unlabelled: boolean,
  what: string,
  hint: string,
  option: string,
): void {
  const bad = targets.findIndex((t) => !(t >= 0 && t < classes) && !(unlabelled && t === NO_LABEL));
  if (bad >= 0)
    throw new OptionError(
      'QK_LABELS_RANGE',
      `${what} ${bad} is ${targets[bad]}, outside the model's ${classes} output classes [0, ${classes})`,
      hint,
      [option],
    );
}

/** The number of samples (first axis) every calibration input shares. */
function sampleCount(data: ReadonlyMap<string, Tensor>): number {
  return Math.min(...[...data.values()].map((t) => t.dims[0] ?? 0));
}

/** Labels given for a classifier: one integer per calibration sample, first axis alike. */
export function checkLabelCount(labels: Tensor, samples: number): void {
  if (labels.dims[0] !== samples || labels.data.length !== samples)
    throw new OptionError(
      'QK_LABELS_COUNT',
      `\`labels\` holds ${labels.data.length} values of shape [${labels.dims.join(', ')}], but the calibration data has ${samples} samples`,
      'give one class id per calibration sample, in the order of `calib` (first axis)',
      ['labels', 'calib'],
    );
}

/**
 * The class id of every output row of the model on `data`, given the output's shape per sample:
 * [classes] with `labels` (a classifier), or [T, vocab] on int64 windows [n, T] (a causal LM, the
 * next token the label). Throws what is missing or wrong for anything else.
 */
export function taskTargets(
  data: ReadonlyMap<string, Tensor>,
  outputDims: readonly number[],
  labels?: Tensor,
): Int32Array {
  const n = sampleCount(data);
  const classes = outputDims[outputDims.length - 1] ?? 1;
  const shape = `[n, ${outputDims.join(', ')}]`;
  if (labels) {
    checkLabelCount(labels, n);
    if (outputDims.length !== 1)
      throw new OptionError(
        'QK_TASK_LOSS_MODEL',
        `\`labels\` give one class per sample, but the model's output is ${shape}, not one row of class logits per sample`,
        'drop `labels`: a causal LM (int64 token windows in, logits [n, T, vocab] out) is scored on its next tokens',
        ['labels'],
      );
    const ids = classIds(labels);
    if (!ids)
      throw new OptionError(
        'QK_LABELS_RANGE',
        `\`labels\` of type ${labels.dtype} are not class ids`,
        'give int64 or int32 labels (.npy)',
        ['labels'],
      );
    checkRange(
      ids,
      classes,
      false,
      'label of sample',
      "give class ids in [0, classes) for the model's output",
      'labels',
    );
    return ids;
  }
  const [input, ...more] = [...data.values()];
  const tokens = input && more.length === 0 && input.data instanceof BigInt64Array && input.dims.length === 2;
  if (tokens && outputDims.length === 2 && outputDims[0] === input.dims[1]) {
    const T = input.dims[1] as number;
    const targets = nextTokenTargets(input.data as BigInt64Array, n, T);
    checkRange(
      targets,
      classes,
      true,
      'next-token target at output row',
      'the windows hold ids beyond the vocabulary',
      'calib',
    );
    return targets;
  }
  if (outputDims.length === 1)
    throw new OptionError(
      'QK_TASK_LOSS_MODEL',
      `\`loss\` task on a classifier (output ${shape}) needs the class of each calibration sample`,
      'give `labels` y.npy (one int per sample), or use `loss` kl',
      ['loss', 'labels'],
    );
  throw new OptionError(
    'QK_TASK_LOSS_MODEL',
    `\`loss\` task needs a classifier (logits [n, classes], with \`labels\`) or a causal LM (int64 windows [n, T] in, logits [n, T, vocab] out); this model's output is ${shape}`,
    "use `loss` kl: it scores any output by the KL of its softmax from fp32's",
    ['loss'],
  );
}

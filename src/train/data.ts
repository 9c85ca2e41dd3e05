import { QuantkitError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TaskKind } from './losses.js';
import type { Batch, TrainDataset } from './loop.js';
import { tf } from './tf.js';

/*
 * Training examples as batches of tf tensors. classify: inputs x [N, ...] (float32) and int64
 * labels [N]. lm: int64 token windows [N, L]; the model reads w[:, :L−1] and is scored against
 * the next tokens w[:, 1:].
 */

export interface ExampleData {
  readonly x: Tensor;
  readonly labels?: Tensor | undefined;
}

function bad(message: string, hint: string): QuantkitError {
  return new QuantkitError('QK_TRAIN_DATA', message, hint);
}

function rowsOf(t: Tensor): number {
  return t.dims[0] ?? 0;
}

function ids(data: BigInt64Array | Int32Array, where: string): Int32Array {
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]);
    if (!Number.isSafeInteger(v) || v < 0 || v > 2147483647)
      throw bad(`${where}: element ${i} is ${v}, not a token id or label`, 'give non-negative int64 ids');
    out[i] = v;
  }
  return out;
}

function classifyDataset(inputName: string, d: ExampleData): TrainDataset {
  const { x, labels } = d;
  if (x.dtype !== 'float32') throw bad(`training inputs are ${x.dtype}`, 'give float32 inputs for `task` classify');
  if (!labels) throw bad('`task` classify needs labels', 'pass `labels` (int64 [N])');
  if (labels.dtype !== 'int64' && labels.dtype !== 'int32')
    throw bad(`labels are ${labels.dtype}`, 'give int64 class ids, one per example');
  const n = rowsOf(x);
  if (labels.dims.length !== 1 || labels.dims[0] !== n)
    throw bad(
      `labels of shape [${labels.dims.join(', ')}] do not match ${n} training examples`,
      'give one label per row of the inputs',
    );
  const xs = x.data as Float32Array;
  const per = xs.length / Math.max(n, 1);
  const ys = ids(labels.data as BigInt64Array | Int32Array, 'labels');
  return {
    size: n,
    batch(indices): Batch {
      const b = indices.length;
      const xb = new Float32Array(b * per);
      const yb = new Int32Array(b);
      indices.forEach((r, i) => {
        xb.set(xs.subarray(r * per, (r + 1) * per), i * per);
        yb[i] = ys[r] as number;
      });
      return { inputs: { [inputName]: tf.tensor(xb, [b, ...x.dims.slice(1)]) }, targets: tf.tensor1d(yb, 'int32') };
    },
  };
}

function lmDataset(inputName: string, d: ExampleData): TrainDataset {
  const w = d.x;
  if ((w.dtype !== 'int64' && w.dtype !== 'int32') || w.dims.length !== 2)
    throw bad(
      `LM training data is ${w.dtype} [${w.dims.join(', ')}]`,
      'give int64 token windows [N, L] (targets are the windows shifted by one)',
    );
  if (d.labels) throw bad('`labels` are for `task` classify', 'an LM is scored against its next tokens; drop `labels`');
  const [n, len] = w.dims as [number, number];
  if (len < 2) throw bad(`LM windows of length ${len}`, 'windows need at least two tokens');
  const all = ids(w.data as BigInt64Array | Int32Array, 'token windows');
  const t = len - 1;
  return {
    size: n,
    batch(indices): Batch {
      const b = indices.length;
      const xb = new Int32Array(b * t);
      const yb = new Int32Array(b * t);
      indices.forEach((r, i) => {
        xb.set(all.subarray(r * len, r * len + t), i * t);
        yb.set(all.subarray(r * len + 1, (r + 1) * len), i * t);
      });
      return { inputs: { [inputName]: tf.tensor(xb, [b, t], 'int32') }, targets: tf.tensor(yb, [b, t], 'int32') };
    },
  };
}

export function makeDataset(task: TaskKind, inputName: string, d: ExampleData): TrainDataset {
  const ds = task === 'lm' ? lmDataset(inputName, d) : classifyDataset(inputName, d);
  if (ds.size === 0) throw bad('the training data has no examples', 'give at least one example');
  return ds;
}

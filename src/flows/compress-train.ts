import { OptionError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { buildTrainable, defaultTrainable, writeBack, type TrainableGraph } from '../passes/trainable/build.js';
import { groupOf, type KMeansWeights } from '../quant/kmeans-weights.js';
import { mulberry32 } from '../quant/prng.js';
import { magnitudeMask } from '../quant/prune.js';
import { makeTensor, type Tensor, type TensorData } from '../tensor/tensor.js';
import { allocateSparsity, sparsityAt } from '../train/compress-finetune.js';
import { makeDataset, type ExampleData } from '../train/data.js';
import {
  shuffled,
  stepsPerEpoch,
  trainLoop,
  type StepInfo,
  type TrainDataset,
  type TrainHistory,
} from '../train/loop.js';
import { LOSSES, type LossResult, type TaskKind } from '../train/losses.js';
import { BlockwiseAdam } from '../train/tf-adam8bit.js';
import { tf, useBackend, type TrainBackend } from '../train/tf.js';
import type { CompressTrainer } from './compress.js';

/*
 * Deep Compression's two training stages on the TensorFlow.js engine (passes/trainable), in
 * memory and browser-safe:
 *   prune   each layer gets its own final sparsity, bought by sensitivity (train/compress-finetune
 *           allocateSparsity: the layer pruned alone, one shot, to each level, its loss increase
 *           measured on the validation split), so that the layers together lose the requested
 *           fraction. The weights then train while their smallest magnitudes are cut away on the
 *           cubic schedule (every layer at the same fraction of its own final sparsity); a pruned
 *           weight is zeroed after every step, so the optimizer's momentum cannot revive it. The
 *           last quarter of the steps recovers at the final masks with a cosine-decayed rate.
 *   kmeans  each shared weight is read through its codebook, W = tf.gather(centroids, index), so
 *           tfjs's gather gradient sums the members' gradients into their centroid (the paper's
 *           update); indices stay fixed, a pruned layer's zero centroid stays 0, and the other
 *           float tensors (biases, norms) train along, at a cosine-decayed rate.
 * Both stages hold out a validation split of the training data (never the caller's test data),
 * measure its loss after every epoch at the final masks (and, for the codebooks, before the
 * first step) and keep the best: fine-tuned codebooks are never worse on held-out data than the
 * untuned ones, and long runs cannot overfit a small training set into the result.
 */

export type OptimizerKind = 'adam' | 'adam8bit';

/** How the pruned fraction is shared among the layers. */
export type PruneAllocation = 'sensitivity' | 'uniform';

export interface CompressTrainOptions {
  readonly task: TaskKind;
  readonly data: ExampleData;
  /** Epochs of the pruning stage (default 3). */
  readonly epochs?: number | undefined;
  /** Epochs of codebook fine-tuning (default `epochs`). */
  readonly kmeansEpochs?: number | undefined;
  /**
   * Learning rate of the pruning stage (default 3e-4) and of the centroids (default 1e-4): below a
   * trained model's own rate, so fine-tuning stays near the solution that generalized.
   */
  readonly lr?: number | undefined;
  readonly centroidLr?: number | undefined;
  readonly batchSize?: number | undefined;
  readonly seed?: number | undefined;
  readonly maxSteps?: number | undefined;
  readonly optimizer?: OptimizerKind | undefined;
  /** Fraction of the training examples held out for keep-best and sensitivity (default 0.1; 0: none). */
  readonly validation?: number | undefined;
  /** Per-layer sparsities by sensitivity (default, needs a validation split) or one for all. */
  readonly allocation?: PruneAllocation | undefined;
  /**
   * Train against the uncompressed model's output distribution (soft targets, knowledge
   * distillation; default) instead of the labels: a richer signal per example when the data is
   * small. On the char LM it halved the perplexity lost at 60 % pruning + 3-bit codebooks.
   */
  readonly distill?: boolean | undefined;
  readonly backend?: TrainBackend | undefined;
  /** The tfjs-backend-wasm .wasm files' folder (Node needs it for the wasm backend). */
  readonly wasmPaths?: string | undefined;
  readonly onStep?: ((stage: 'prune' | 'kmeans', s: StepInfo) => void) | undefined;
}

/** Levels each layer's sensitivity is measured at. */
const LEVELS = [0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95];
/** Predictions (images, or tokens of LM windows) the sensitivity curves are measured on, at most. */
const SENSITIVITY_TARGETS = 2048;
/** The rate a cosine schedule ends at, as a fraction of the start. */
const FINAL_LR = 0.05;

function positive(v: number | undefined, fallback: number, name: string, integer: boolean): number {
  const x = v ?? fallback;
  if (!(x > 0) || !Number.isFinite(x) || (integer && !Number.isInteger(x)))
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`${name}\` ${x} is not a positive ${integer ? 'integer' : 'number'}`,
      `give \`${name}\` > 0`,
      [name],
    );
  return x;
}

function fraction(v: number | undefined, fallback: number, name: string): number {
  const x = v ?? fallback;
  if (!(x >= 0 && x < 0.9))
    throw new OptionError('QK_BAD_OPTION', `\`${name}\` ${x} is not a fraction in [0, 0.9)`, `e.g. \`${name}\` 0.1`, [
      name,
    ]);
  return x;
}

function optimizerOf(kind: OptimizerKind, lr: number): BlockwiseAdam {
  return new BlockwiseAdam({ lr }, kind === 'adam8bit' ? 8 : 32);
}

/** Cosine decay from `lr` to lr · FINAL_LR over steps from `begin` to `end` (flat before). */
function cosineAt(lr: number, step: number, begin: number, end: number): number {
  if (step <= begin || end <= begin) return lr;
  const t = Math.min(1, (step - begin) / (end - begin));
  return lr * (FINAL_LR + (1 - FINAL_LR) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

function rows(t: Tensor, picked: Int32Array): Tensor {
  const n = t.dims[0] ?? 0;
  const per = t.data.length / Math.max(n, 1);
  const data = t.data as TensorData & { subarray(a: number, b: number): TensorData };
  const out = makeTensor(t.dtype, [picked.length, ...t.dims.slice(1)]);
  const target = out.data as TensorData & { set(src: TensorData, at: number): void };
  picked.forEach((r, i) => target.set(data.subarray(r * per, (r + 1) * per), i * per));
  return out;
}

/** A seeded split of the examples: training rows and held-out validation rows. */
export function splitExamples(
  data: ExampleData,
  validation: number,
  seed: number,
): { train: ExampleData; validation: ExampleData | undefined } {
  const n = data.x.dims[0] ?? 0;
  const held = Math.floor(n * validation);
  if (held < 1 || held >= n) return { train: data, validation: undefined };
  const order = shuffled(n, mulberry32((seed ^ 0x5eed) >>> 0));
  const valRows = Int32Array.from(order.subarray(0, held)).sort();
  const trainRows = Int32Array.from(order.subarray(held)).sort();
  const pick = (r: Int32Array): ExampleData => ({
    x: rows(data.x, r),
    labels: data.labels ? rows(data.labels, r) : undefined,
  });
  return { train: pick(trainRows), validation: pick(valRows) };
}

type Forward = (inputs: Readonly<Record<string, tf.Tensor>>) => tf.Tensor;

/** Mean loss over a whole dataset (no gradients), in batches. */
function datasetLoss(forward: Forward, data: TrainDataset, task: TaskKind, batchSize: number): number {
  let sum = 0;
  let count = 0;
  for (let b = 0; b < data.size; b += batchSize) {
    const idx = new Int32Array(Math.min(batchSize, data.size - b)).map((_, i) => b + i);
    const batch = data.batch(idx);
    const loss = tf.tidy(() => LOSSES[task](forward(batch.inputs), batch.targets).loss.dataSync()[0] as number);
    tf.dispose([...Object.values(batch.inputs), batch.targets]);
    sum += loss * idx.length;
    count += idx.length;
  }
  return sum / Math.max(count, 1);
}

/** Cross-entropy against soft targets (probabilities over the last axis); hits: same arg-max. */
function softCrossEntropy(logits: tf.Tensor, probs: tf.Tensor): LossResult {
  const classes = logits.shape[logits.rank - 1] as number;
  const z = tf.reshape(logits, [-1, classes]) as tf.Tensor2D;
  const p = tf.reshape(probs, [-1, classes]) as tf.Tensor2D;
  return {
    loss: tf.neg(tf.mean(tf.sum(tf.mul(p, tf.logSoftmax(z)), -1))) as tf.Scalar,
    correct: tf.sum(tf.cast(tf.equal(tf.argMax(z, -1), tf.argMax(p, -1)), 'float32')) as tf.Scalar,
    count: z.shape[0],
  };
}

type Snapshot = Map<string, Float32Array>;

function snapshot(vars: readonly tf.Variable[]): Snapshot {
  return new Map(vars.map((v) => [v.name, Float32Array.from(v.dataSync() as Float32Array)]));
}

function restore(vars: readonly tf.Variable[], s: Snapshot): void {
  for (const v of vars) {
    const data = s.get(v.name);
    if (data) tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
  }
}

/** The best validation loss seen and the variables that gave it. */
class KeepBest {
  best = Infinity;
  epoch = -1;
  losses: number[] = [];
  private saved: Snapshot | undefined;

  consider(epoch: number, loss: number, vars: readonly tf.Variable[]): void {
    this.losses.push(loss);
    if (loss < this.best) {
      this.best = loss;
      this.epoch = epoch;
      this.saved = snapshot(vars);
    }
  }

  restoreInto(vars: readonly tf.Variable[]): void {
    if (this.saved) restore(vars, this.saved);
  }

  describe(what: string): string {
    if (this.epoch === -1) return '';
    return `; kept ${this.epoch === 0 ? what : `epoch ${this.epoch}`} (validation loss ${this.best.toFixed(4)}; by epoch ${this.losses.map((l) => l.toFixed(4)).join(' ')})`;
  }
}

function describe(h: TrainHistory, opt: { stateBytes?: () => number }, kind: OptimizerKind): string {
  const last = h.epochs[h.epochs.length - 1];
  return `fine-tuned ${h.steps} steps (${kind}, state ${opt.stateBytes?.() ?? 0} bytes), last epoch loss ${last?.loss.toFixed(4) ?? '-'}`;
}

/**
 * codebook[index] with the paper's centroid gradient (the members' gradients summed), summed here
 * in JavaScript: tf.gather's own gradient needs UnsortedSegmentSum, which the wasm backend lacks.
 */
function codebookRead(cb: tf.Variable, index: tf.Tensor, flat: Int32Array): tf.Tensor {
  const read = tf.customGrad(((c: tf.Tensor) => ({
    value: tf.gather(c, index),
    gradFunc: (dy: tf.Tensor) => {
      const g = dy.dataSync() as Float32Array;
      const sum = new Float32Array(c.size);
      for (let i = 0; i < flat.length; i++) {
        const j = flat[i] as number;
        sum[j] = (sum[j] as number) + (g[i] as number);
      }
      return tf.tensor(sum, c.shape, 'float32');
    },
  })) as Parameters<typeof tf.customGrad<tf.Tensor>>[0]);
  return read(cb);
}

function firstOutput(graph: TrainableGraph, read?: (name: string, value: tf.Tensor) => tf.Tensor): Forward {
  return (x) =>
    graph
      .forward(x, read ? { read: (_node, _slot, name, value) => read(name, value as tf.Tensor) } : undefined)
      .values()
      .next().value as tf.Tensor;
}

export function compressTrainer(
  options: CompressTrainOptions,
): CompressTrainer & { histories: TrainHistory[]; sparsities: Map<string, number> } {
  const epochs = positive(options.epochs, 3, 'epochs', true);
  const kmeansEpochs = positive(options.kmeansEpochs, epochs, 'kmeansEpochs', true);
  const batchSize = positive(options.batchSize, 32, 'batchSize', true);
  const lr = positive(options.lr, 3e-4, 'lr', false);
  const centroidLr = positive(options.centroidLr, 1e-4, 'centroidLr', false);
  const held = fraction(options.validation, 0.1, 'validation');
  const kind = options.optimizer ?? 'adam';
  const seed = options.seed ?? 0;
  const histories: TrainHistory[] = [];
  const sparsities = new Map<string, number>();
  const split = splitExamples(options.data, held, seed);
  const allocation = options.allocation ?? (split.validation ? 'sensitivity' : 'uniform');
  if (allocation === 'sensitivity' && !split.validation)
    throw new OptionError(
      'QK_BAD_OPTION',
      'pruning by sensitivity needs a validation split',
      'give `validation` > 0 (and enough examples), or `allocation` uniform',
      ['validation', 'allocation'],
    );
  const ready = useBackend(options.backend ?? 'cpu', { wasmPaths: options.wasmPaths });
  const datasets = (model: Model) => {
    const inputName = model.graph.inputs[0]?.name ?? '';
    return {
      train: makeDataset(options.task, inputName, split.train),
      validation: split.validation ? makeDataset(options.task, inputName, split.validation) : undefined,
    };
  };

  /** Each target's sparsity by sensitivity on the validation split (weights restored after). */
  function allocate(graph: TrainableGraph, targets: readonly string[], sparsity: number, all: TrainDataset): number[] {
    const forward = firstOutput(graph);
    // One-shot curves need only a loss estimate: at most SENSITIVITY_TARGETS scored predictions.
    const perExample = options.task === 'lm' ? Math.max(1, (split.validation?.x.dims[1] ?? 2) - 1) : 1;
    const size = Math.min(all.size, Math.max(1, Math.floor(SENSITIVITY_TARGETS / perExample)));
    const val: TrainDataset = { size, batch: (idx) => all.batch(idx) };
    // A target beyond the top level is reachable only with every layer at it.
    const levels = sparsity > (LEVELS.at(-1) as number) ? [...LEVELS, sparsity] : LEVELS;
    const base = datasetLoss(forward, val, options.task, batchSize);
    const layers = targets.map((name) => {
      const v = graph.variables.get(name) as tf.Variable;
      const original = Float32Array.from(v.dataSync() as Float32Array);
      const increase = levels.map((s) => {
        if (s === 0) return 0;
        const mask = magnitudeMask(original, s);
        const pruned = original.map((x, i) => (mask[i] ? 0 : x));
        tf.tidy(() => v.assign(tf.tensor(pruned, v.shape, 'float32')));
        return datasetLoss(forward, val, options.task, batchSize) - base;
      });
      tf.tidy(() => v.assign(tf.tensor(original, v.shape, 'float32')));
      return { elements: original.length, increase };
    });
    return allocateSparsity(layers, levels, sparsity);
  }

  // The uncompressed model's probabilities on the training rows, made once (before pruning).
  let teacher: { probs: Float32Array; per: number; shape: number[] } | undefined;
  const makeTeacher = (graph: TrainableGraph, train: TrainDataset) => {
    if (options.distill === false || teacher) return;
    const forward = firstOutput(graph);
    const parts: Float32Array[] = [];
    let shape: number[] = [];
    for (let b = 0; b < train.size; b += batchSize) {
      const idx = new Int32Array(Math.min(batchSize, train.size - b)).map((_, i) => b + i);
      const batch = train.batch(idx);
      const p = tf.tidy(() => tf.softmax(forward(batch.inputs)));
      shape = p.shape.slice(1);
      parts.push(Float32Array.from(p.dataSync() as Float32Array));
      tf.dispose([p, ...Object.values(batch.inputs), batch.targets]);
    }
    const per = shape.reduce((a, d) => a * d, 1);
    const probs = new Float32Array(train.size * per);
    let at = 0;
    for (const part of parts) {
      probs.set(part, at);
      at += part.length;
    }
    teacher = { probs, per, shape };
  };
  /** The training rows with the teacher's probabilities as targets (distillation), or as they are. */
  const withTeacher = (train: TrainDataset): TrainDataset => {
    const t = teacher;
    if (!t) return train;
    return {
      size: train.size,
      batch: (idx) => {
        const b = train.batch(idx);
        b.targets.dispose();
        const soft = new Float32Array(idx.length * t.per);
        idx.forEach((r, i) => soft.set(t.probs.subarray(r * t.per, (r + 1) * t.per), i * t.per));
        return { inputs: b.inputs, targets: tf.tensor(soft, [idx.length, ...t.shape], 'float32') };
      },
    };
  };
  const trainLoss = () => (teacher ? softCrossEntropy : LOSSES[options.task]);

  return {
    histories,
    sparsities,
    async prune(model: Model, targets: readonly string[], sparsity: number): Promise<string> {
      await ready;
      const data = datasets(model);
      const graph = buildTrainable(model, {}, 'prune');
      makeTeacher(graph, data.train);
      const live = targets.filter((t) => graph.variables.has(t));
      const finals =
        allocation === 'sensitivity' && data.validation && live.length > 1
          ? allocate(graph, live, sparsity, data.validation)
          : live.map(() => sparsity);
      live.forEach((t, i) => sparsities.set(t, finals[i] as number));
      const steps = Math.min(epochs * stepsPerEpoch(data.train.size, batchSize), options.maxSteps ?? Infinity);
      const rampEnd = Math.floor(steps * 0.75);
      const masks = new Map<string, tf.Tensor>();
      let current = 0;
      const reprune = (s: number) => {
        live.forEach((name, i) => {
          const v = graph.variables.get(name) as tf.Variable;
          const keep = magnitudeMask(
            v.dataSync() as Float32Array,
            (s * (finals[i] as number)) / Math.max(sparsity, 1e-9),
          );
          masks.get(name)?.dispose();
          masks.set(
            name,
            tf.tensor(
              Float32Array.from(keep, (m) => 1 - m),
              v.shape,
              'float32',
            ),
          );
        });
        current = s;
      };
      const applyMasks = () =>
        tf.tidy(() => {
          for (const [name, m] of masks) {
            const v = graph.variables.get(name) as tf.Variable;
            v.assign(tf.mul(v, m));
          }
        });
      const opt = optimizerOf(kind, lr);
      const vars = [...graph.variables.values()];
      const forward = firstOutput(graph);
      const keep = new KeepBest();
      try {
        const history = trainLoop({ variables: () => vars, forward }, withTeacher(data.train), {
          epochs,
          batchSize,
          seed,
          optimizer: opt,
          loss: trainLoss(),
          maxSteps: options.maxSteps,
          onStep: (s) => {
            const target = sparsityAt(s.step, steps, { final: sparsity, end: rampEnd });
            if (target > current) reprune(target);
            applyMasks();
            opt.learningRate = cosineAt(lr, s.step, rampEnd, steps);
            options.onStep?.('prune', s);
          },
          onEpoch: (e) => {
            if (current < sparsity || !data.validation) return;
            keep.consider(e.epoch + 1, datasetLoss(forward, data.validation, options.task, batchSize), vars);
          },
        });
        if (current < sparsity) {
          reprune(sparsity);
          applyMasks();
        }
        keep.restoreInto(vars);
        writeBack(graph);
        histories.push(history);
        const perLayer = live.map((t) => `${t} ${(100 * (sparsities.get(t) ?? 0)).toFixed(0)} %`).join(', ');
        return `pruned on a schedule while training (${allocation}: ${perLayer}); ${describe(history, opt, kind)}${keep.describe('')}`;
      } finally {
        opt.dispose();
        for (const m of masks.values()) m.dispose();
        graph.dispose();
      }
    },

    async kmeans(model: Model, weights: ReadonlyMap<string, KMeansWeights>) {
      await ready;
      const data = datasets(model);
      const graph = buildTrainable(
        model,
        { trainable: (init, g) => !weights.has(init.name) && defaultTrainable(init, g) },
        'kmeans',
      );
      const centroids = new Map<
        string,
        { cb: tf.Variable; index: tf.Tensor; flat: Int32Array; zero: tf.Tensor | undefined }
      >();
      for (const [name, w] of weights) {
        const group = groupOf(w);
        const flat = Int32Array.from(w.codes, (c, i) => group(i) * w.k + c);
        const zero = w.zeroCode
          ? tf.tensor(Float32Array.from({ length: w.codebooks.length }, (_, j) => (j % w.k === 0 ? 0 : 1)))
          : undefined;
        centroids.set(name, {
          cb: tf.variable(tf.tensor(Float32Array.from(w.codebooks)), true, `qk/kmeans/${name}`),
          index: tf.tensor(flat, [...w.dims], 'int32'),
          flat,
          zero,
        });
      }
      makeTeacher(graph, data.train);
      const vars = [...graph.variables.values(), ...[...centroids.values()].map((c) => c.cb)];
      const forward = firstOutput(graph, (name, value) => {
        const c = centroids.get(name);
        return c ? codebookRead(c.cb, c.index, c.flat) : value;
      });
      const opt = optimizerOf(kind, centroidLr);
      const keep = new KeepBest();
      if (data.validation) keep.consider(0, datasetLoss(forward, data.validation, options.task, batchSize), vars);
      const steps = Math.min(kmeansEpochs * stepsPerEpoch(data.train.size, batchSize), options.maxSteps ?? Infinity);
      try {
        const history = trainLoop({ variables: () => vars, forward }, withTeacher(data.train), {
          epochs: kmeansEpochs,
          batchSize,
          seed,
          optimizer: opt,
          loss: trainLoss(),
          maxSteps: options.maxSteps,
          onStep: (s) => {
            tf.tidy(() => {
              for (const c of centroids.values()) if (c.zero) c.cb.assign(tf.mul(c.cb, c.zero));
            });
            opt.learningRate = cosineAt(centroidLr, s.step, 0, steps);
            options.onStep?.('kmeans', s);
          },
          onEpoch: (e) => {
            if (data.validation)
              keep.consider(e.epoch + 1, datasetLoss(forward, data.validation, options.task, batchSize), vars);
          },
        });
        keep.restoreInto(vars);
        writeBack(graph);
        histories.push(history);
        const tuned = new Map<string, KMeansWeights>();
        for (const [name, w] of weights) {
          const c = centroids.get(name) as { cb: tf.Variable };
          tuned.set(name, { ...w, codebooks: Float32Array.from(c.cb.dataSync() as Float32Array) });
        }
        return { tuned, note: `${describe(history, opt, kind)}${keep.describe('the untuned codebooks')}` };
      } finally {
        opt.dispose();
        for (const c of centroids.values()) {
          c.cb.dispose();
          c.index.dispose();
          c.zero?.dispose();
        }
        graph.dispose();
      }
    },
  };
}

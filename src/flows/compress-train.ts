import { OptionError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { buildTrainable, defaultTrainable, writeBack } from '../passes/trainable/build.js';
import { groupOf, type KMeansWeights } from '../quant/kmeans-weights.js';
import { magnitudeMask } from '../quant/prune.js';
import { sparsityAt } from '../train/compress-finetune.js';
import { makeDataset, type ExampleData } from '../train/data.js';
import { stepsPerEpoch, trainLoop, type StepInfo, type TrainHistory } from '../train/loop.js';
import { LOSSES, type TaskKind } from '../train/losses.js';
import { BlockwiseAdam } from '../train/tf-adam8bit.js';
import { tf, useBackend, type TrainBackend } from '../train/tf.js';
import type { CompressTrainer } from './compress.js';

/*
 * Deep Compression's two training stages on the TensorFlow.js engine (passes/trainable), in
 * memory and browser-safe:
 *   prune   the weights train while their smallest magnitudes are cut away on the cubic schedule
 *           (train/compress-finetune.ts sparsityAt), each layer to the same fraction; the last
 *           quarter of the steps fine-tunes with the final masks. A pruned weight is zeroed after
 *           every step, so the optimizer's momentum cannot revive it.
 *   kmeans  each shared weight is read through its codebook, W = tf.gather(centroids, index), so
 *           tfjs's gather gradient sums the members' gradients into their centroid (the paper's
 *           update); indices stay fixed, a pruned layer's zero centroid stays 0, and the other
 *           float tensors (biases, norms) train along.
 */

export type OptimizerKind = 'adam' | 'adam8bit';

export interface CompressTrainOptions {
  readonly task: TaskKind;
  readonly data: ExampleData;
  /** Epochs of each stage (default 3). */
  readonly epochs?: number | undefined;
  /** Learning rate of the pruning stage (default 1e-3) and of the centroids (default 1e-4). */
  readonly lr?: number | undefined;
  readonly centroidLr?: number | undefined;
  readonly batchSize?: number | undefined;
  readonly seed?: number | undefined;
  readonly maxSteps?: number | undefined;
  readonly optimizer?: OptimizerKind | undefined;
  readonly backend?: TrainBackend | undefined;
  readonly onStep?: ((stage: 'prune' | 'kmeans', s: StepInfo) => void) | undefined;
}

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

function optimizerOf(kind: OptimizerKind, lr: number): tf.Optimizer & { stateBytes?: () => number } {
  return kind === 'adam8bit' ? new BlockwiseAdam({ lr }, 8) : new BlockwiseAdam({ lr }, 32);
}

function describe(h: TrainHistory, opt: { stateBytes?: () => number }, kind: OptimizerKind): string {
  const last = h.epochs[h.epochs.length - 1];
  return `fine-tuned ${h.steps} steps (${kind}, state ${opt.stateBytes?.() ?? 0} bytes), last epoch loss ${last?.loss.toFixed(4) ?? '-'}`;
}

export function compressTrainer(options: CompressTrainOptions): CompressTrainer & { histories: TrainHistory[] } {
  const epochs = positive(options.epochs, 3, 'epochs', true);
  const batchSize = positive(options.batchSize, 32, 'batchSize', true);
  const lr = positive(options.lr, 1e-3, 'lr', false);
  const centroidLr = positive(options.centroidLr, 1e-4, 'centroidLr', false);
  const kind = options.optimizer ?? 'adam';
  const histories: TrainHistory[] = [];
  const ready = useBackend(options.backend ?? 'cpu');

  return {
    histories,
    async prune(model: Model, targets: readonly string[], sparsity: number): Promise<string> {
      await ready;
      const inputName = model.graph.inputs[0]?.name ?? '';
      const data = makeDataset(options.task, inputName, options.data);
      const graph = buildTrainable(model, {}, 'prune');
      const steps = Math.min(epochs * stepsPerEpoch(data.size, batchSize), options.maxSteps ?? Infinity);
      const masks = new Map<string, tf.Tensor>();
      let current = 0;
      const reprune = (s: number) => {
        for (const name of targets) {
          const v = graph.variables.get(name);
          if (!v) continue;
          const keep = magnitudeMask(v.dataSync() as Float32Array, s).map((m) => 1 - m);
          masks.get(name)?.dispose();
          masks.set(name, tf.tensor(Float32Array.from(keep), v.shape, 'float32'));
        }
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
      try {
        const history = trainLoop(
          {
            variables: () => [...graph.variables.values()],
            forward: (x) => graph.forward(x).values().next().value as tf.Tensor,
          },
          data,
          {
            epochs,
            batchSize,
            seed: options.seed ?? 0,
            optimizer: opt,
            loss: LOSSES[options.task],
            maxSteps: options.maxSteps,
            onStep: (s) => {
              const target = sparsityAt(s.step, steps, { final: sparsity });
              if (target > current) reprune(target);
              applyMasks();
              options.onStep?.('prune', s);
            },
          },
        );
        reprune(sparsity);
        applyMasks();
        writeBack(graph);
        histories.push(history);
        return `pruned on a schedule while training; ${describe(history, opt, kind)}`;
      } finally {
        opt.dispose();
        for (const m of masks.values()) m.dispose();
        graph.dispose();
      }
    },

    async kmeans(model: Model, weights: ReadonlyMap<string, KMeansWeights>) {
      await ready;
      const inputName = model.graph.inputs[0]?.name ?? '';
      const data = makeDataset(options.task, inputName, options.data);
      const graph = buildTrainable(
        model,
        { trainable: (init, g) => !weights.has(init.name) && defaultTrainable(init, g) },
        'kmeans',
      );
      const centroids = new Map<string, { cb: tf.Variable; index: tf.Tensor; zero: tf.Tensor | undefined }>();
      for (const [name, w] of weights) {
        const group = groupOf(w);
        const flat = Int32Array.from(w.codes, (c, i) => group(i) * w.k + c);
        const zero = w.zeroCode
          ? tf.tensor(Float32Array.from({ length: w.codebooks.length }, (_, j) => (j % w.k === 0 ? 0 : 1)))
          : undefined;
        centroids.set(name, {
          cb: tf.variable(tf.tensor(Float32Array.from(w.codebooks)), true, `qk/kmeans/${name}`),
          index: tf.tensor(flat, [...w.dims], 'int32'),
          zero,
        });
      }
      const opt = optimizerOf(kind, centroidLr);
      try {
        const history = trainLoop(
          {
            variables: () => [...graph.variables.values(), ...[...centroids.values()].map((c) => c.cb)],
            forward: (x) =>
              graph
                .forward(x, {
                  read: (_node, _slot, name, value) => {
                    const c = centroids.get(name);
                    return c ? tf.gather(c.cb, c.index) : value;
                  },
                })
                .values()
                .next().value as tf.Tensor,
          },
          data,
          {
            epochs,
            batchSize,
            seed: options.seed ?? 0,
            optimizer: opt,
            loss: LOSSES[options.task],
            maxSteps: options.maxSteps,
            onStep: (s) => {
              tf.tidy(() => {
                for (const c of centroids.values()) if (c.zero) c.cb.assign(tf.mul(c.cb, c.zero));
              });
              options.onStep?.('kmeans', s);
            },
          },
        );
        writeBack(graph);
        histories.push(history);
        const tuned = new Map<string, KMeansWeights>();
        for (const [name, w] of weights) {
          const c = centroids.get(name) as { cb: tf.Variable };
          tuned.set(name, { ...w, codebooks: Float32Array.from(c.cb.dataSync() as Float32Array) });
        }
        return { tuned, note: describe(history, opt, kind) };
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

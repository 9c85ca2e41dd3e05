import { OptionError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import type { StaticReport, WeightBits } from '../passes/activation/qdq.js';
import type { Target } from '../passes/activation/weight-form.js';
import { prepareQat, type QatGraph } from '../passes/qat/qat-graph.js';
import { makeDataset, type ExampleData } from '../train/data.js';
import { trainLoop, type StepInfo, type TrainDataset, type TrainHistory } from '../train/loop.js';
import { LOSSES, type TaskKind } from '../train/losses.js';
import type { LsqInit, QatMethod } from '../train/quantizers.js';
import { tf, useBackend, type TrainBackend } from '../train/tf.js';

/*
 * `qat`: quantization-aware training of an fp32 ONNX model, in memory and browser-safe. The model
 * becomes a trainable TensorFlow.js graph with fake quantizers where the int8-static plan puts
 * Q/DQ (passes/qat), activation ranges are observed on a few batches, the model trains with Adam
 * on the task's cross-entropy, and the result is written as the QDQ model ONNX Runtime runs.
 */

export interface QatOptions {
  readonly task: TaskKind;
  readonly bits: WeightBits;
  /** Default 'ste'. */
  readonly method?: QatMethod | undefined;
  /** Default 3. */
  readonly epochs?: number | undefined;
  /** Adam's learning rate (default 1e-4: fine-tuning a trained model). */
  readonly lr?: number | undefined;
  /**
   * Learning rate of the learned quantizer parameters (PACT's α, LSQ's steps) as a fraction of `lr`
   * (default 1: one optimizer for all). Adam's update size is its rate whatever the gradient's
   * scale, so LSQ's gradient scaling 1/√(N·Qp) does not slow the steps; a rate of their own does.
   * The LM's LSQ 4-bit wants 0.1 with `lsqInit` 'mse'; the digits CNNs lose a test image or two
   * with it (README, QAT).
   */
  readonly quantLrScale?: number | undefined;
  /** Optimizer steps before the quantizer parameters start to move (default 0). */
  readonly quantWarmup?: number | undefined;
  /** Where LSQ's weight steps start (default 'max', the PTQ grid). */
  readonly lsqInit?: LsqInit | undefined;
  /** Default 32. */
  readonly batchSize?: number | undefined;
  /** Shuffling seed (default 0): the same seed, data and backend give the same bytes. */
  readonly seed?: number | undefined;
  /** Stops after this many optimizer steps in all. */
  readonly maxSteps?: number | undefined;
  /** Batches of activation-range observation before training (default 4). */
  readonly calibrationBatches?: number | undefined;
  readonly target?: Target | undefined;
  readonly exclude?: readonly string[] | undefined;
  /** Default 'cpu'. */
  readonly backend?: TrainBackend | undefined;
  readonly wasmPaths?: string | undefined;
  /** Held-out data scored by the engine's fake-quantized model after training (`history.engine`). */
  readonly evaluate?: ExampleData | undefined;
  readonly onStep?: ((s: StepInfo) => void) | undefined;
  readonly label?: string | undefined;
}

export interface EngineScore {
  /** Arg-max accuracy (token accuracy for an LM). */
  readonly accuracy: number;
  /** Mean cross-entropy in nats. */
  readonly crossEntropy: number;
  readonly count: number;
}

export interface QatHistory extends TrainHistory {
  /** The engine's fake-quantized model on `evaluate`, after training. */
  readonly engine: EngineScore | undefined;
}

export interface QatResult {
  readonly bytes: Uint8Array;
  readonly history: QatHistory;
  readonly report: StaticReport;
  readonly notes: string[];
}

function positive(value: number | undefined, fallback: number, name: string, integer: boolean): number {
  const v = value ?? fallback;
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v)))
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`${name}\` ${v} is not a positive ${integer ? 'integer' : 'number'}`,
      `give \`${name}\` > 0`,
      [name],
    );
  return v;
}

/** Scores `data` with the graph in its current mode, `batchSize` examples at a time. */
export function scoreEngine(
  graph: Pick<QatGraph, 'forward'>,
  task: TaskKind,
  data: TrainDataset,
  batchSize: number,
): EngineScore {
  let nll = 0;
  let correct = 0;
  let count = 0;
  for (let start = 0; start < data.size; start += batchSize) {
    const idx = new Int32Array(Math.min(batchSize, data.size - start)).map((_, i) => start + i);
    const batch = data.batch(idx);
    const [loss, hits, n] = tf.tidy(() => {
      const r = LOSSES[task](graph.forward(batch.inputs), batch.targets);
      return [r.loss.dataSync()[0] as number, r.correct.dataSync()[0] as number, r.count] as const;
    });
    tf.dispose([...Object.values(batch.inputs), batch.targets]);
    nll += loss * n;
    correct += hits;
    count += n;
  }
  return { accuracy: correct / count, crossEntropy: nll / count, count };
}

export async function qat(modelBytes: Uint8Array, data: ExampleData, options: QatOptions): Promise<QatResult> {
  const label = options.label ?? '<model>';
  const epochs = positive(options.epochs, 3, 'epochs', true);
  const lr = positive(options.lr, 1e-4, 'lr', false);
  const batchSize = positive(options.batchSize, 32, 'batchSize', true);
  const calibration = positive(options.calibrationBatches, 4, 'calibrationBatches', true);
  const method = options.method ?? 'ste';
  const quantLrScale = positive(options.quantLrScale, 1, 'quantLrScale', false);
  // A library-only option (no CLI flag): fractions round down, negative or NaN means no hold.
  const warmup = Math.max(0, Math.floor(options.quantWarmup ?? 0)) || 0;
  await useBackend(options.backend ?? 'cpu', { wasmPaths: options.wasmPaths });
  const model = modelFromProto(decodeModel(modelBytes, label), { label });
  const inputName = model.graph.inputs[0]?.name ?? '';
  const dataset = makeDataset(options.task, inputName, data);
  const held = options.evaluate ? makeDataset(options.task, inputName, options.evaluate) : undefined;
  const graph = prepareQat(model, {
    bits: options.bits,
    method,
    target: options.target,
    exclude: options.exclude,
    lsqInit: options.lsqInit,
    label,
  });
  try {
    // Calibration: the first batches in a fixed order observe the activation ranges in float.
    graph.mode = 'observe';
    for (let b = 0; b < calibration && b * batchSize < dataset.size; b++) {
      const idx = new Int32Array(Math.min(batchSize, dataset.size - b * batchSize)).map((_, i) => b * batchSize + i);
      const batch = dataset.batch(idx);
      tf.tidy(() => {
        graph.forward(batch.inputs);
      });
      tf.dispose([...Object.values(batch.inputs), batch.targets]);
    }
    graph.endObservation();
    graph.mode = 'train';
    const separate = quantLrScale !== 1 || warmup > 0;
    const optimizer = tf.train.adam(lr);
    const quantOptimizer = separate ? tf.train.adam(lr * quantLrScale) : undefined;
    const history = trainLoop(
      {
        variables: () => (separate ? graph.weightVariables() : graph.variables()),
        forward: (x) => graph.forward(x),
        penalty: () => graph.penalty(),
      },
      dataset,
      {
        epochs,
        batchSize,
        seed: options.seed ?? 0,
        optimizer,
        groups: quantOptimizer
          ? [{ optimizer: quantOptimizer, variables: () => graph.quantizerVariables(), from: warmup }]
          : undefined,
        loss: LOSSES[options.task],
        maxSteps: options.maxSteps,
        onStep: options.onStep,
      },
    );
    optimizer.dispose();
    quantOptimizer?.dispose();
    graph.mode = 'eval';
    const engine = held ? scoreEngine(graph, options.task, held, batchSize) : undefined;
    const { report, notes } = graph.exportQdq();
    const bytes = encodeModel(modelToProto(model));
    return { bytes, history: { ...history, engine }, report, notes };
  } finally {
    graph.dispose();
  }
}

import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { qat, type QatResult } from '../../flows/qat.js';
import { writeFileAtomic } from '../../node/files.js';
import { isTarget, TARGETS } from '../../passes/activation/weight-form.js';
import type { WeightBits } from '../../passes/activation/qdq.js';
import { TASKS, type TaskKind } from '../../train/losses.js';
import { LSQ_INITS, QAT_METHODS, type LsqInit, type QatMethod } from '../../train/quantizers.js';
import { TRAIN_BACKENDS, type TrainBackend } from '../../train/tf.js';
import { formatActivationReport } from '../activation-report.js';
import { readModelBytes, readTensorFile } from '../inputs.js';
import { cliWording, inCliWords } from '../option-flags.js';
import { trainProgressBar } from '../progress.js';
import { numberFlag, oneOf } from '../flag-values.js';
import { tfjsWasmFolder } from '../../node/tfjs-wasm.js';

interface QatCliOptions {
  output: string;
  train: string;
  labels?: string;
  task: string;
  bits: string;
  method: string;
  epochs: string;
  lr: string;
  batch: string;
  seed: string;
  maxSteps?: string;
  calibBatches: string;
  quantLrScale?: string;
  quantWarmup?: string;
  lsqInit?: string;
  backend: string;
  target: string;
  eval?: string;
  evalLabels?: string;
  exclude: string[];
  progress?: boolean;
  force?: boolean;
  json?: boolean;
}

function summary(r: QatResult, o: { task: TaskKind; bits: WeightBits; method: QatMethod; backend: string }): string {
  const h = r.history;
  const last = h.epochs[h.epochs.length - 1];
  const lines = [
    `qat ${o.method}, ${o.bits}-bit weights, uint8 activations (${o.task}): ${h.steps} steps, ${h.examples} examples in ${h.seconds.toFixed(1)} s on ${o.backend} (${(h.steps / h.seconds).toFixed(2)} steps/s, ${(h.examples / h.seconds).toFixed(1)} examples/s)`,
  ];
  if (last) lines.push(`last epoch: loss ${last.loss.toFixed(4)}, accuracy ${(last.accuracy * 100).toFixed(2)} %`);
  if (h.engine)
    lines.push(
      `held-out (fake-quantized engine): accuracy ${(h.engine.accuracy * 100).toFixed(2)} %, cross-entropy ${h.engine.crossEntropy.toFixed(4)}${o.task === 'lm' ? ` (perplexity ${Math.exp(h.engine.crossEntropy).toFixed(4)})` : ''}`,
    );
  // The QDQ listing of the int8-static report, under the training summary instead of its heading.
  const qdq = formatActivationReport({
    scheme: 'int8-static',
    method: 'qat',
    samples: 0,
    smoothQuant: null,
    ...r.report,
    notes: [...r.notes, ...r.report.notes],
  });
  return `${lines.join('\n')}\n${qdq.slice(qdq.indexOf('\n') + 1)}`;
}

export function registerQat(program: Command): void {
  program
    .command('qat')
    .description(
      'quantization-aware training: fine-tune an fp32 model with fake-quantized weights and activations, write its QDQ model',
    )
    .argument('<model>', 'fp32 ONNX model')
    .requiredOption('-o, --output <file>', 'the QDQ model to write')
    .requiredOption(
      '--train <file>',
      'training inputs (.npy): float32 [N, ...] (classify) or int64 token windows [N, L] (lm)',
    )
    .option('--labels <file>', 'int64 class labels [N] (.npy) for --task classify')
    .option('--task <task>', `${TASKS.join(' or ')}`, 'classify')
    .option('--bits <n>', 'weight bits: 8, 4 (int4 storage) or 3 (int4 storage, 3-bit levels)', '8')
    .option('--method <m>', `${QAT_METHODS.join(', ')}: plain straight-through, PACT clips, LSQ steps`, 'ste')
    .option('--epochs <n>', 'passes over the training data', '3')
    .option('--lr <x>', "Adam's learning rate", '1e-4')
    .option('--batch <n>', 'examples per step', '32')
    .option('--seed <n>', 'shuffling seed (same seed, data and backend: same bytes)', '0')
    .option('--max-steps <n>', 'stop after this many steps')
    .option('--calib-batches <n>', 'batches that observe activation ranges before training', '4')
    .option(
      '--quant-lr-scale <x>',
      "pact/lsq: the learned clips' or steps' learning rate as a fraction of --lr (default 1; the LM's LSQ 4-bit wants 0.1 with --lsq-init mse)",
    )
    .option('--quant-warmup <n>', 'pact/lsq: steps before the learned clips or steps start to move (default 0)')
    .option('--lsq-init <how>', `lsq: where the weight steps start: ${LSQ_INITS.join(', ')} (default max)`)
    .option('--backend <b>', `TensorFlow.js backend: ${TRAIN_BACKENDS.join(' or ')}`, 'wasm')
    .option(
      '--target <cpu>',
      `CPU the model is for: ${TARGETS.join(', ')} (8-bit weights train on 7-bit levels for any)`,
      'any',
    )
    .option('--eval <file>', 'held-out inputs the trained fake-quantized model is scored on')
    .option('--eval-labels <file>', 'held-out labels for --eval')
    .option(
      '--exclude <list>',
      'op types or node names to keep in fp32 (comma-separated)',
      (v: string, p: string[]) => [...p, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .option('--progress', 'show the progress bar even when stderr is not a terminal')
    .option('--force', 'replace the output file if it exists')
    .option('--json', 'print the result as JSON')
    .action(async (modelPath: string, opts: QatCliOptions) => {
      const task = oneOf('--task', opts.task, TASKS);
      const bits = Number(oneOf('--bits', opts.bits, ['8', '4', '3'])) as WeightBits;
      const method = oneOf('--method', opts.method, QAT_METHODS);
      const backend = oneOf<TrainBackend>('--backend', opts.backend, TRAIN_BACKENDS);
      if (!isTarget(opts.target)) oneOf('--target', opts.target, TARGETS);
      if (task === 'classify' && !opts.labels)
        throw new QuantkitError('QK_TRAIN_DATA', '--task classify needs --labels', 'give int64 labels [N] as .npy');
      const bar = trainProgressBar(opts.progress ?? false);
      let result: QatResult;
      try {
        result = await qat(
          readModelBytes(modelPath),
          { x: readTensorFile(opts.train), labels: opts.labels ? readTensorFile(opts.labels) : undefined },
          {
            task,
            bits,
            method,
            epochs: numberFlag('--epochs', opts.epochs),
            lr: numberFlag('--lr', opts.lr),
            batchSize: numberFlag('--batch', opts.batch),
            seed: numberFlag('--seed', opts.seed),
            maxSteps: numberFlag('--max-steps', opts.maxSteps),
            calibrationBatches: numberFlag('--calib-batches', opts.calibBatches),
            quantLrScale: numberFlag('--quant-lr-scale', opts.quantLrScale),
            quantWarmup: numberFlag('--quant-warmup', opts.quantWarmup),
            lsqInit: opts.lsqInit === undefined ? undefined : oneOf<LsqInit>('--lsq-init', opts.lsqInit, LSQ_INITS),
            backend,
            wasmPaths: backend === 'wasm' ? tfjsWasmFolder() : undefined,
            target: opts.target as (typeof TARGETS)[number],
            exclude: opts.exclude,
            evaluate: opts.eval
              ? { x: readTensorFile(opts.eval), labels: opts.evalLabels ? readTensorFile(opts.evalLabels) : undefined }
              : undefined,
            onStep: bar.progress,
            label: modelPath,
          },
        );
      } finally {
        bar.stop();
      }
      await writeFileAtomic(opts.output, [result.bytes], { force: opts.force ?? false, inputs: [modelPath] });
      if (opts.json) {
        const { bytes: _bytes, ...rest } = result;
        process.stdout.write(
          `${JSON.stringify(inCliWords({ ...rest, output: opts.output, outputBytes: result.bytes.length }), null, 2)}\n`,
        );
      } else {
        process.stdout.write(cliWording(summary(result, { task, bits, method, backend })));
        process.stdout.write(`wrote ${opts.output} (${result.bytes.length} bytes)\n`);
      }
    });
}

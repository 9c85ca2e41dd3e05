import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { lmPerplexity } from '../../flows/evaluate-node.js';
import {
  LORA_BASES,
  LORA_MERGE_SCHEMES,
  lora,
  type LoraBase,
  type LoraMergeScheme,
  type LoraResult,
} from '../../flows/lora.js';
import { writeFileAtomic } from '../../node/files.js';
import { describeVerification, verifyWrittenModel, type Verification } from '../../node/verify-model.js';
import type { Tensor } from '../../tensor/tensor.js';
import { TRAIN_BACKENDS, type TrainBackend } from '../../train/tf.js';
import { readModelBytes, readTensorFile } from '../inputs.js';
import { cliWording, inCliWords } from '../option-flags.js';
import { trainProgressBar } from '../progress.js';
import { numberFlag, oneOf } from '../flag-values.js';
import { tfjsWasmFolder } from '../../node/tfjs-wasm.js';

interface LoraCliOptions {
  output: string;
  train: string;
  eval?: string;
  rank: string;
  alpha: string;
  dropout: string;
  mlp?: boolean;
  base: string;
  blockSize: string;
  epochs: string;
  lr: string;
  batch: string;
  seed: string;
  maxSteps?: string;
  backend: string;
  merge?: string;
  mergeScheme: string;
  progress?: boolean;
  force?: boolean;
  json?: boolean;
}

interface MergedReport {
  readonly path: string;
  readonly scheme: LoraMergeScheme;
  readonly bytes: number;
  readonly verification: Verification;
  readonly perplexity: number | undefined;
}

function summary(r: LoraResult, backend: string, merged: MergedReport | undefined): string {
  const h = r.history;
  const kind = r.base === 'nf4' ? 'QLoRA (NF4 base, double-quantized constants)' : 'LoRA (fp32 base)';
  const b = r.baseBytes;
  const lines = [
    `${kind}, rank ${r.rank}, α ${r.alpha}: ${r.modules.length} modules (${r.modules.join(', ')}), ${r.parameters} adapter parameters`,
    `adapted base weights in memory: ${b.held} bytes (fp32: ${b.fp32}, ${(b.held / b.fp32).toFixed(4)}×, ${((8 * b.held) / b.elements).toFixed(3)} bits/weight); embeddings, norms, biases, the head and unadapted weights stay fp32`,
    `${h.steps} steps, ${h.examples} windows in ${h.seconds.toFixed(1)} s on ${backend} (${(h.steps / h.seconds).toFixed(2)} steps/s); last loss ${(h.stepLoss[h.stepLoss.length - 1] ?? NaN).toFixed(4)}`,
  ];
  if (h.before && h.after)
    lines.push(
      `held-out perplexity: ${Math.exp(h.before.crossEntropy).toFixed(4)} base alone → ${Math.exp(h.after.crossEntropy).toFixed(4)} with the adapters`,
    );
  if (merged) {
    lines.push(`merged (${merged.scheme}): ${describeVerification(merged.verification)}`);
    if (merged.perplexity !== undefined)
      lines.push(`merged model's held-out perplexity in ONNX Runtime: ${merged.perplexity.toFixed(4)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerLora(program: Command): void {
  program
    .command('lora')
    .description(
      'LoRA / QLoRA: train low-rank adapters over a frozen (NF4 or fp32) LM, save them as safetensors, optionally merge',
    )
    .argument('<model>', 'fp32 ONNX language model')
    .requiredOption('-o, --output <file>', 'the adapters to write (.safetensors, PEFT names)')
    .requiredOption(
      '--train <file>',
      'int64 token windows [N, L] (.npy): the model reads w[:, :L-1], scored on w[:, 1:]',
    )
    .option('--eval <file>', 'held-out token windows scored before and after training (and on the merged model)')
    .option('--rank <n>', 'adapter rank r', '8')
    .option('--alpha <x>', 'α: the adapters are scaled by α / r', '16')
    .option('--dropout <p>', "dropout on the adapters' input while training", '0.05')
    .option('--mlp', "adapt the MLP's weights too (default: the attention projections)")
    .option('--base <b>', `frozen base: ${LORA_BASES.join(' (QLoRA) or ')} (plain LoRA)`, 'nf4')
    .option('--block-size <n>', 'NF4 block size of the base', '64')
    .option('--epochs <n>', 'passes over the training windows', '1')
    .option('--lr <x>', "Adam's learning rate", '1e-3')
    .option('--batch <n>', 'windows per step', '32')
    .option('--seed <n>', "seed of the shuffles, A's init and the dropout", '0')
    .option('--max-steps <n>', 'stop after this many steps')
    .option('--backend <b>', `TensorFlow.js backend: ${TRAIN_BACKENDS.join(' or ')}`, 'wasm')
    .option('--merge <file>', 'also write the model with the adapters merged (checked in ONNX Runtime)')
    .option('--merge-scheme <s>', `form of the merged weights: ${LORA_MERGE_SCHEMES.join(', ')}`, 'fp32')
    .option('--progress', 'show the progress bar even when stderr is not a terminal')
    .option('--force', 'replace the output files if they exist')
    .option('--json', 'print the result as JSON')
    .action(async (modelPath: string, opts: LoraCliOptions) => {
      const base = oneOf<LoraBase>('--base', opts.base, LORA_BASES);
      const backend = oneOf<TrainBackend>('--backend', opts.backend, TRAIN_BACKENDS);
      const mergeScheme = oneOf<LoraMergeScheme>('--merge-scheme', opts.mergeScheme, LORA_MERGE_SCHEMES);
      if (opts.mergeScheme !== 'fp32' && !opts.merge)
        throw new QuantkitError(
          'QK_BAD_FLAG',
          `--merge-scheme ${opts.mergeScheme} without --merge`,
          'give --merge out.onnx to write the merged model',
        );
      const evalWindows: Tensor | undefined = opts.eval ? readTensorFile(opts.eval) : undefined;
      const bar = trainProgressBar(opts.progress ?? false);
      let result: LoraResult;
      try {
        result = await lora(
          readModelBytes(modelPath),
          { x: readTensorFile(opts.train) },
          {
            rank: numberFlag('--rank', opts.rank),
            alpha: numberFlag('--alpha', opts.alpha),
            dropout: numberFlag('--dropout', opts.dropout),
            mlp: opts.mlp ?? false,
            base,
            blockSize: numberFlag('--block-size', opts.blockSize),
            epochs: numberFlag('--epochs', opts.epochs),
            lr: numberFlag('--lr', opts.lr),
            batchSize: numberFlag('--batch', opts.batch),
            seed: numberFlag('--seed', opts.seed),
            maxSteps: numberFlag('--max-steps', opts.maxSteps),
            backend,
            wasmPaths: backend === 'wasm' ? tfjsWasmFolder() : undefined,
            evaluate: evalWindows ? { x: evalWindows } : undefined,
            merge: opts.merge ? mergeScheme : undefined,
            onStep: bar.progress,
            label: modelPath,
          },
        );
      } finally {
        bar.stop();
      }
      const force = opts.force ?? false;
      await writeFileAtomic(opts.output, [result.adapter], { force, inputs: [modelPath] });
      let merged: MergedReport | undefined;
      if (opts.merge && result.merged) {
        await writeFileAtomic(opts.merge, [result.merged.bytes], { force, inputs: [modelPath, opts.output] });
        const verification = await verifyWrittenModel({ modelPath: opts.merge, step: `lora \`merge\` ${mergeScheme}` });
        const perplexity = evalWindows ? (await lmPerplexity(result.merged.bytes, evalWindows)).perplexity : undefined;
        merged = { path: opts.merge, scheme: mergeScheme, bytes: result.merged.bytes.length, verification, perplexity };
      }
      if (opts.json) {
        const { adapter, merged: _m, history, ...rest } = result;
        process.stdout.write(
          `${JSON.stringify(
            inCliWords({
              ...rest,
              history: { ...history, stepLoss: undefined },
              output: opts.output,
              adapterBytes: adapter.length,
              merged,
            }),
            null,
            2,
          )}\n`,
        );
      } else {
        process.stdout.write(cliWording(summary(result, backend, merged)));
        process.stdout.write(`wrote ${opts.output} (${result.adapter.length} bytes)\n`);
        if (merged) process.stdout.write(`wrote ${merged.path} (${merged.bytes} bytes)\n`);
      }
    });
}

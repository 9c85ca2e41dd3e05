import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import type { StageRow } from '../../flows/compress.js';
import { compressFile, decompressFile } from '../../flows/compress-file.js';
import { describeVerification } from '../../node/verify-model.js';
import { inCliWords } from '../option-flags.js';
import { stepProgressBar, trainProgressBar } from '../progress.js';
import { formatTable } from '../table.js';
import { collectList } from '../flag-values.js';

interface CompressCliOptions {
  output: string;
  train?: string;
  labels?: string;
  eval?: string;
  evalLabels?: string;
  prune?: string;
  kmeans: string;
  perChannel?: boolean;
  seed?: string;
  huffman?: boolean;
  exclude: string[];
  json?: boolean;
  force?: boolean;
  progress?: boolean;
  verify: boolean;
  finetune?: boolean;
  epochs?: string;
  lr?: string;
  batch?: string;
  optimizer?: string;
  kmeansEpochs?: string;
  centroidLr?: string;
  validation?: string;
  allocation?: string;
  kmeansInit?: string;
  backend: string;
  distill: boolean;
  tables: boolean;
  float16Vectors: boolean;
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined || (allowed as readonly string[]).includes(value)) return value as T | undefined;
  throw new QuantkitError('QK_BAD_OPTION', `${flag} '${value}' is not known`, `use ${allowed.join(' or ')}`);
}

function number(flag: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n))
    throw new QuantkitError('QK_BAD_OPTION', `${flag} '${s}' is not a number`, `e.g. ${flag} 0.8`);
  return n;
}

/** Deep Compression's table: each stage's size, ratio to fp32 and quality. */
export function formatStages(stages: readonly StageRow[]): string {
  const quality = (s: StageRow) =>
    s.quality === undefined
      ? '-'
      : s.quality.metric === 'accuracy'
        ? `acc ${(100 * s.quality.value).toFixed(2)} %`
        : `ppl ${s.quality.value.toFixed(4)}`;
  return formatTable(
    ['stage', 'weight bytes', 'ratio', 'file bytes', 'file ratio', 'quality', 'note'],
    stages.map((s) => [
      s.stage,
      String(s.bytes),
      `${s.ratio.toFixed(2)}×`,
      String(s.fileBytes),
      `${s.fileRatio.toFixed(2)}×`,
      quality(s),
      s.note,
    ]),
  );
}

export function registerCompress(program: Command): void {
  program
    .command('compress')
    .description(
      'Deep Compression: magnitude pruning, k-means weight sharing, Huffman coding; a table of size and quality per stage',
    )
    .argument('<model>', 'ONNX model file')
    .requiredOption('-o, --output <file>', 'output: a .qkc container with --huffman, else the k-means ONNX model')
    .option('--train <x.npy>', 'training inputs (also the evaluation set when --eval is not given)')
    .option('--labels <y.npy>', 'training labels (a classifier; an LM takes int64 windows [n, T + 1] alone)')
    .option('--eval <x.npy>', 'evaluation inputs for the quality column')
    .option('--eval-labels <y.npy>', 'evaluation labels')
    .option('--prune <fraction>', 'prune this fraction of each weight by magnitude, e.g. 0.8')
    .option('--kmeans <bits>', 'k-means index width 2…8 (1 without pruning)', '4')
    .option('--per-channel', 'one codebook per output channel (default one per layer)')
    .option('--seed <n>', 'k-means++ seed (default 1)')
    .option('--huffman', 'Huffman-code the indices and relative indices into a .qkc container')
    .option('--finetune', 'train while pruning (cubic schedule) and fine-tune the codebooks on --train/--labels')
    .option('--epochs <n>', 'epochs of each training stage (default 3)')
    .option('--lr <x>', 'learning rate while pruning (default 3e-4)')
    .option('--batch <n>', 'training batch size (default 32)')
    .option('--optimizer <kind>', "'adam' (32-bit state, default) or 'adam8bit' (8-bit block-wise state)")
    .option('--kmeans-epochs <n>', 'epochs of codebook fine-tuning (default --epochs)')
    .option('--centroid-lr <x>', 'learning rate of codebook fine-tuning (default 1e-4)')
    .option('--validation <fraction>', 'share of --train held out for sensitivity and keep-best (default 0.1)')
    .option('--allocation <how>', "per-layer sparsity: 'sensitivity' (default) or 'uniform'")
    .option('--kmeans-init <how>', "starting centroids: 'linear' (default) or 'kmeans++' (seeded)")
    .option('--backend <b>', 'TensorFlow.js backend for fine-tuning: wasm or cpu', 'wasm')
    .option('--no-distill', "train on the labels instead of the uncompressed model's outputs")
    .option('--no-tables', 'keep trainable tables read outside weight inputs (a position table) fp32, unshared')
    .option('--no-float16-vectors', 'keep biases and norm scales float32 instead of rounding them to binary16')
    .option('--exclude <op|name...>', 'keep these op types, node or weight names as they are', collectList, [])
    .option('--json', 'print the result as JSON')
    .option('-f, --force', 'replace an existing output file')
    .option('--progress', 'show a progress bar even when stderr is not a terminal')
    .option('--no-verify', 'do not load and run the written model in ONNX Runtime')
    .action(async (input: string, opts: CompressCliOptions) => {
      if (opts.optimizer !== undefined && opts.optimizer !== 'adam' && opts.optimizer !== 'adam8bit')
        throw new QuantkitError(
          'QK_BAD_OPTION',
          `--optimizer '${opts.optimizer}' is not known`,
          "use 'adam' or 'adam8bit'",
        );
      const steps = stepProgressBar(opts.progress ?? false, 0);
      // One bar per training stage (their step counts differ), each showing the running loss.
      let training = trainProgressBar(opts.progress ?? false);
      let stage: string | undefined;
      const onStep = (s: string, info: Parameters<NonNullable<typeof training.progress>>[0]) => {
        if (stage !== undefined && s !== stage) {
          training.stop();
          training = trainProgressBar(opts.progress ?? false);
        }
        stage = s;
        training.progress?.(info);
      };
      const r = await compressFile(input, opts.output, {
        train: opts.train,
        labels: opts.labels,
        eval: opts.eval,
        evalLabels: opts.evalLabels,
        prune: number('--prune', opts.prune),
        kmeansBits: number('--kmeans', opts.kmeans),
        perChannel: opts.perChannel ?? false,
        seed: number('--seed', opts.seed),
        huffman: opts.huffman ?? false,
        exclude: opts.exclude,
        force: opts.force ?? false,
        verify: opts.verify,
        progress: steps.progress,
        finetune: opts.finetune ?? false,
        epochs: number('--epochs', opts.epochs),
        lr: number('--lr', opts.lr),
        batchSize: number('--batch', opts.batch),
        optimizer: opts.optimizer as 'adam' | 'adam8bit' | undefined,
        kmeansEpochs: number('--kmeans-epochs', opts.kmeansEpochs),
        centroidLr: number('--centroid-lr', opts.centroidLr),
        validation: number('--validation', opts.validation),
        allocation: oneOf('--allocation', opts.allocation, ['sensitivity', 'uniform'] as const),
        kmeansInit: oneOf('--kmeans-init', opts.kmeansInit, ['linear', 'kmeans++'] as const),
        backend: oneOf('--backend', opts.backend, ['wasm', 'cpu'] as const),
        distill: opts.distill,
        tables: opts.tables,
        float16Vectors: opts.float16Vectors,
        onStep: training.progress ? onStep : undefined,
      })
        .finally(() => {
          steps.stop();
          training.stop();
        })
        .then(inCliWords);
      if (opts.json) {
        const { stages, pruned, coded, plain, output, verification, evaluatedOn } = r;
        process.stdout.write(
          `${JSON.stringify({ input, output, evaluatedOn, stages, pruned, coded, plain, verification }, null, 2)}\n`,
        );
        return;
      }
      process.stdout.write(`${formatStages(r.stages)}\n`);
      if (r.evaluatedOn === undefined) process.stdout.write('quality: give --eval (or --train) data to measure it\n');
      process.stdout.write(`written to ${r.output}\n${describeVerification(r.verification)}\n`);
    });
}

export function registerDecompress(program: Command): void {
  program
    .command('decompress')
    .description('read a .qkc container back into the ONNX model it was made from (runs in ONNX Runtime)')
    .argument('<file>', '.qkc file written by quantkit compress --huffman')
    .requiredOption('-o, --output <file>', 'output ONNX file')
    .option('-f, --force', 'replace an existing output file')
    .option('--json', 'print the result as JSON')
    .option('--no-verify', 'do not load and run the written model in ONNX Runtime')
    .action(async (input: string, opts: { output: string; force?: boolean; json?: boolean; verify: boolean }) => {
      const r = await decompressFile(input, opts.output, { force: opts.force ?? false, verify: opts.verify }).then(
        inCliWords,
      );
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${r.tensors.length} Huffman-coded tensors${r.plain.length > 0 ? `, ${r.plain.length} stored exactly` : ''}: ${r.inputFileBytes} → ${r.outputFileBytes} bytes written to ${r.output}\n${describeVerification(r.verification)}\n`,
      );
    });
}

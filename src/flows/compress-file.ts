import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { OptionError, QuantkitError } from '../errors.js';
import { readNpy } from '../io/npy/npy.js';
import { writeFileAtomic } from '../node/files.js';
import { readOnnxFileInlined } from '../node/model-file.js';
import type { Verification } from '../node/verify-model.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  compressModel,
  type CompressOptions,
  type CompressResult,
  type CompressTrainer,
  type StageQuality,
} from './compress.js';
import { compressTrainer, type OptimizerKind, type PruneAllocation } from './compress-train.js';
import type { TrainBackend } from '../train/tf.js';
import type { StepInfo } from '../train/loop.js';
import { decompressModel, type CodedTensor, type PlainTensor } from './compressed-model.js';
import { classifierAccuracy, lmPerplexity } from './evaluate-node.js';
import { verifyOutput, type VerifyOption } from './verify-output.js';

/*
 * compress / decompress file to file: .npy data read, quality measured in onnxruntime-node,
 * outputs written atomically and the ONNX ones loaded and run in ORT (verify-output.ts).
 */

export interface CompressFileOptions extends Omit<CompressOptions, 'evaluate' | 'trainer'>, VerifyOption {
  /** Training inputs (and labels): fine-tuning data, and the evaluation set when no `eval` is given. */
  readonly train?: string | undefined;
  readonly labels?: string | undefined;
  /** Evaluation inputs: a classifier's with `evalLabels`, or an LM's int64 windows [n, T + 1] alone. */
  readonly eval?: string | undefined;
  readonly evalLabels?: string | undefined;
  readonly force?: boolean | undefined;
  /** Train while pruning and fine-tune the codebooks on `train` (and `labels`; none for an LM). */
  readonly finetune?: boolean | undefined;
  readonly epochs?: number | undefined;
  readonly lr?: number | undefined;
  readonly batchSize?: number | undefined;
  readonly maxSteps?: number | undefined;
  readonly optimizer?: OptimizerKind | undefined;
  /** Codebook fine-tuning epochs (default `epochs`) and rate (default 1e-4). */
  readonly kmeansEpochs?: number | undefined;
  readonly centroidLr?: number | undefined;
  /** Held-out fraction of `train` for sensitivity and keep-best (default 0.1). */
  readonly validation?: number | undefined;
  readonly allocation?: PruneAllocation | undefined;
  /** Train against the uncompressed model's outputs (default) rather than the labels. */
  readonly distill?: boolean | undefined;
  /** TensorFlow.js backend (default wasm, its .wasm files from the installed package). */
  readonly backend?: TrainBackend | undefined;
  readonly onStep?: ((stage: 'prune' | 'kmeans', s: StepInfo) => void) | undefined;
}

export interface CompressFileResult extends CompressResult {
  readonly output: string;
  /** The ONNX output run in ORT, or (for a container) its decompressed model. */
  readonly verification: Verification;
  readonly evaluatedOn: string | undefined;
}

function npy(path: string, option: string): Tensor {
  if (!path.endsWith('.npy'))
    throw new OptionError('QK_INPUT_FORMAT', `\`${option}\` '${path}' is not a .npy file`, 'give NumPy .npy arrays', [
      option,
    ]);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new QuantkitError(
      'QK_FILE_UNREADABLE',
      `cannot read '${path}' (${(e as NodeJS.ErrnoException).code ?? 'unknown'})`,
      'check the path and its permissions',
    );
  }
  return readNpy(bytes, path);
}

/** The quality measure for the data given: accuracy with labels, perplexity for int64 windows alone. */
export function evaluatorFor(
  x: Tensor,
  labels: Tensor | undefined,
  what: string,
): (onnx: Uint8Array) => Promise<StageQuality> {
  if (labels)
    return async (onnx) => ({ metric: 'accuracy', value: (await classifierAccuracy(onnx, x, labels)).accuracy });
  if (x.dtype !== 'int64' || x.dims.length !== 2)
    throw new OptionError(
      'QK_BAD_OPTION',
      `${what} is ${x.dtype} [${x.dims.join(', ')}] without labels`,
      'give `labels` for a classifier, or int64 token windows [n, T + 1] for a language model',
      ['labels'],
    );
  return async (onnx) => ({ metric: 'perplexity', value: (await lmPerplexity(onnx, x)).perplexity });
}

export async function compressFile(
  inPath: string,
  outPath: string,
  options: CompressFileOptions,
): Promise<CompressFileResult> {
  const input = readOnnxFileInlined(inPath);
  const evalPath = options.eval ?? options.train;
  const labelsPath = options.eval !== undefined ? options.evalLabels : options.labels;
  const evaluate =
    evalPath === undefined
      ? undefined
      : evaluatorFor(
          npy(evalPath, options.eval !== undefined ? 'eval' : 'train'),
          labelsPath === undefined ? undefined : npy(labelsPath, options.eval !== undefined ? 'evalLabels' : 'labels'),
          evalPath,
        );
  let trainer: CompressTrainer | undefined;
  if (options.finetune) {
    if (options.train === undefined)
      throw new OptionError(
        'QK_BAD_OPTION',
        '`finetune` needs training data',
        'give `train` (and `labels` for a classifier)',
        ['finetune', 'train'],
      );
    const backend = options.backend ?? 'wasm';
    const x = npy(options.train, 'train');
    const labels = options.labels === undefined ? undefined : npy(options.labels, 'labels');
    trainer = compressTrainer({
      task: labels ? 'classify' : 'lm',
      data: { x, labels },
      epochs: options.epochs,
      kmeansEpochs: options.kmeansEpochs,
      lr: options.lr,
      centroidLr: options.centroidLr,
      validation: options.validation,
      allocation: options.allocation,
      distill: options.distill,
      backend,
      wasmPaths: backend === 'wasm' ? wasmFolder() : undefined,
      batchSize: options.batchSize,
      maxSteps: options.maxSteps,
      seed: options.seed,
      optimizer: options.optimizer,
      onStep: options.onStep,
    });
  }
  const r = await compressModel(input, { ...options, evaluate, trainer });
  const bytes = r.container ?? r.onnx;
  await writeFileAtomic(outPath, [bytes], { force: options.force ?? false, inputs: [inPath] });
  // A container is checked by compressModel (it decodes to the ONNX model); that model is run here.
  const verification = r.container
    ? await verifyBytes(r.onnx, outPath, 'compress `huffman`', options)
    : await verifyOutput({ modelPath: outPath }, 'compress', options);
  return { ...r, output: outPath, verification, evaluatedOn: evalPath };
}

/** The installed tfjs-backend-wasm's .wasm files (Node reads them from disk by this prefix). */
function wasmFolder(): string {
  const pkg = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return `${join(dirname(pkg), 'dist')}/`;
}

/** ORT run of an ONNX model held in memory (a container's content), through a temp file. */
async function verifyBytes(onnx: Uint8Array, near: string, step: string, o: VerifyOption): Promise<Verification> {
  if (o.verify === false) return verifyOutput({ modelPath: near }, step, o);
  const tmp = `${near}.verify-${process.pid}.onnx`;
  await writeFileAtomic(tmp, [onnx], { force: true });
  try {
    return await verifyOutput({ modelPath: tmp }, step, o);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export interface DecompressFileResult {
  readonly output: string;
  readonly tensors: readonly CodedTensor[];
  /** Other tensors the container stored exactly (few values, binary16). */
  readonly plain: readonly PlainTensor[];
  readonly inputFileBytes: number;
  readonly outputFileBytes: number;
  readonly verification: Verification;
}

export async function decompressFile(
  inPath: string,
  outPath: string,
  options: VerifyOption & { readonly force?: boolean | undefined },
): Promise<DecompressFileResult> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(inPath);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
    throw new QuantkitError(
      code === 'ENOENT' ? 'QK_FILE_NOT_FOUND' : 'QK_FILE_UNREADABLE',
      `cannot read '${inPath}' (${code})`,
      'check the path and its permissions',
    );
  }
  const { onnx, tensors, plain } = decompressModel(bytes, inPath);
  await writeFileAtomic(outPath, [onnx], { force: options.force ?? false, inputs: [inPath] });
  const verification = await verifyOutput({ modelPath: outPath }, 'decompress', options);
  return { output: outPath, tensors, plain, inputFileBytes: bytes.length, outputFileBytes: onnx.length, verification };
}

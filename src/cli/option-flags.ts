import type { QuantkitError } from '../errors.js';

/*
 * The library names its options in its own terms, marked in backticks wherever its text mentions
 * one (errors, hints, report notes: "pass `force` to replace it", "excluded (`exclude`)"); the CLI
 * prints them as the flags a user types. The wording of flags lives here, in cli/: everything the
 * CLI prints from the library goes through cliWording (or inCliWords for a whole report).
 */

/**
 * Library option → flag. A key may also be an option set to a value when the CLI has a flag of
 * its own for that setting (`verify: false` is --no-verify).
 */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  scheme: '--scheme',
  schemes: '--schemes',
  blockSize: '--block-size',
  doubleQuant: '--double-quant',
  format: '--format',
  method: '--method',
  calib: '--calib',
  calibBatch: '--calib-batch',
  smoothQuant: '--smoothquant',
  exclude: '--exclude',
  keepFirstLast: '--keep-first-last',
  target: '--target',
  nonFinite: '--non-finite',
  force: '--force',
  'verify: false': '--no-verify',
  inputs: '--input',
  batchSize: '--batch',
  externalData: '--external-data',
  threshold: '--threshold',
  params: '--params',
  rtn: '--rtn',
  quantizeEmbeddings: '--quantize-embeddings',
  quantLrScale: '--quant-lr-scale',
  quantWarmup: '--quant-warmup',
  lsqInit: '--lsq-init',
  port: '--port',
  threads: '--threads',
  accuracyLevel: '--accuracy-level',
  qdqAccuracyLevel: '--qdq-accuracy-level',
  minConvReduction: '--min-conv-reduction',
  perToken: '--per-token',
  dtypes: '--dtypes',
  embeddings: '--embeddings',
  bits: '--bits',
  perChannel: '--per-channel',
  seed: '--seed',
  prune: '--prune',
  huffman: '--huffman',
  train: '--train',
  eval: '--eval',
  evalLabels: '--eval-labels',
  epochs: '--epochs',
  lr: '--lr',
  labels: '--labels',
  task: '--task',
  calibrationBatches: '--calib-batches',
  hqq: '--hqq',
  floatZeroPoints: '--float-zero-points',
  awq: '--awq',
  awqGptq: '--awq-gptq',
  targetBits: '--target-bits',
  outliers: '--outliers',
  maxLossIncrease: '--max-loss-increase',
  targetSize: '--target-size',
  finetune: '--finetune',
  optimizer: '--optimizer',
  rank: '--rank',
  alpha: '--alpha',
  dropout: '--dropout',
  mlp: '--mlp',
  base: '--base',
  merge: '--merge-scheme',
  crossFit: '--cross-fit',
  loss: '--loss',
  guard: '--no-guard',
  refit: '--no-refit',
  validation: '--validation',
  allocation: '--allocation',
  kmeansEpochs: '--kmeans-epochs',
  centroidLr: '--centroid-lr',
  kmeansInit: '--kmeans-init',
};

/** The flag for a marked option, or the mark unchanged when the CLI has no flag of that name. */
function flagOf(mark: string, option: string): string {
  return Object.hasOwn(OPTION_FLAGS, option) ? (OPTION_FLAGS[option] as string) : mark;
}

/** Library text in the CLI's words: each `option` it marks becomes the option's flag. */
export function cliWording(text: string): string {
  return text.replace(/`([^`\n]+)`/g, flagOf);
}

/**
 * A library result (report, verification) with every string in the CLI's words, for printing as
 * text or JSON; numbers, typed arrays and class instances pass through as they are.
 */
export function inCliWords<T>(value: T): T {
  if (typeof value === 'string') return cliWording(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => inCliWords(v)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, inCliWords(v)])) as T;
  }
  return value;
}

/** The one-line terminal form of a user error, with library option names shown as flags. */
export function formatCliError(e: QuantkitError): string {
  return `error ${e.code}: ${cliWording(e.message)}${e.hint ? ` (${cliWording(e.hint)})` : ''}`;
}

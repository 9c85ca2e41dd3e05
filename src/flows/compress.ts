import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { emitKMeansTables, roundVectorsToFloat16, sharedTables } from '../passes/compress-tables.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { compressibleSites, pruneModel, prunedWeights, type PrunedWeight } from '../passes/prune.js';
import { outputChannelAxis } from '../passes/weight-only/dq-storage.js';
import { ensureOpset } from '../passes/weight-only/opset.js';
import { totalInitializerBytes, type WeightOnlyReport } from '../passes/weight-only/index.js';
import type { KMeansLayout } from '../passes/weight-only/types.js';
import { checkKMeansBits, indexSlotBits, quantizeKMeansWeights, type KMeansWeights } from '../quant/kmeans-weights.js';
import { checkSparsity } from '../quant/prune.js';
import { bestGapBits, encodeSparse } from '../quant/sparse-gaps.js';
import {
  codedBytes,
  compressKMeansModel,
  decompressModel,
  plainBytes,
  type CodedTensor,
  type PlainTensor,
} from './compressed-model.js';
import { quantizeModel } from './quantize.js';

/*
 * Deep Compression (Han, Mao, Dally 2016) as a pipeline over an ONNX model: magnitude pruning,
 * k-means weight sharing of what is left (zeros kept exact), Huffman coding of the indices and
 * of the sparse entries' relative indices. Trainable tables read other ways than as a weight (a
 * learned position table) share codebooks too, unpruned (passes/compress-tables.ts); the other
 * small trainable tensors (biases, norms) are rounded to binary16 (`float16Vectors`) after
 * fine-tuning, so their error is in the quantized stage's measured quality. Each stage's size is
 * counted as the paper counts it:
 *   fp32       every initializer, 4 bytes an element
 *   pruned     a pruned weight as its non-zeros (32 bits each) with relative indices of the
 *              width that stores it smallest (fillers included); other tensors as they are
 *   quantized  indices (bits each, sparse as above), the fp32 codebooks, rounded tensors at 2 bytes
 *   huffman    Huffman tables and bitstreams instead of the indices, and what the container stores
 *              exactly in fewer bytes (compressed-model.ts: a mask's few values, binary16 tensors)
 * and each stage's file (fileBytes): the fp32 and pruned ONNX models, the k-means ONNX model, and
 * the container (docs/compressed-format.md), whose graph and header it stores deflated; fileRatio
 * is the input file's bytes over each, the ratio a user comparing files sees.
 * Quality after each stage comes from `evaluate` (ONNX Runtime on the caller's data). Without
 * fine-tuning (`finetune` absent) the stages are data-free: prune and cluster, nothing retrained.
 */

export interface StageQuality {
  readonly metric: 'accuracy' | 'perplexity';
  readonly value: number;
}

export type CompressStage = 'fp32' | 'pruned' | 'quantized' | 'huffman';

export interface StageRow {
  readonly stage: CompressStage;
  /** Bytes of the weights (every initializer) in this stage's storage (see above). */
  readonly bytes: number;
  /** fp32 bytes / bytes. */
  readonly ratio: number;
  /** Bytes of the file this stage writes (ONNX, or the container), graph included. */
  readonly fileBytes: number;
  /** The input ONNX file's bytes / fileBytes: what a user comparing file sizes sees. */
  readonly fileRatio: number;
  readonly quality: StageQuality | undefined;
  readonly note: string;
}

export interface CompressOptions {
  /** Fraction of each weight to prune by magnitude (0 or absent: no pruning). */
  readonly prune?: number | undefined;
  /** k-means index width (absent: 4). */
  readonly kmeansBits?: number | undefined;
  readonly perChannel?: boolean | undefined;
  /** Starting centroids: 'linear' over each codebook's range (default, the paper's) or seeded 'kmeans++'. */
  readonly kmeansInit?: 'linear' | 'kmeans++' | undefined;
  readonly seed?: number | undefined;
  /** Huffman-code the result into the container (default true). */
  readonly huffman?: boolean | undefined;
  readonly exclude?: readonly string[] | undefined;
  /** Share codebooks over trainable tables outside the weight inputs too (default true). */
  readonly tables?: boolean | undefined;
  /** Round the small trainable tensors (biases, norms) to binary16 values (default true). */
  readonly float16Vectors?: boolean | undefined;
  readonly evaluate?: ((onnx: Uint8Array) => Promise<StageQuality>) | undefined;
  /** Fine-tuning (flows/compress-train.ts); absent: every stage is data-free. */
  readonly trainer?: CompressTrainer | undefined;
  readonly progress?: ((done: number, total: number, step: string) => void) | undefined;
}

/** The training side of the pipeline: both stages change `model` in place. */
export interface CompressTrainer {
  /** Prunes `targets` to `sparsity` while training (their zeros written into the model); a note. */
  prune(model: Model, targets: readonly string[], sparsity: number): Promise<string>;
  /** Fine-tunes the codebooks of `weights` (indices fixed) and the other float tensors. */
  kmeans(
    model: Model,
    weights: ReadonlyMap<string, KMeansWeights>,
  ): Promise<{ readonly tuned: ReadonlyMap<string, KMeansWeights>; readonly note: string }>;
}

export interface CompressResult {
  readonly stages: StageRow[];
  /** The k-means ONNX model (stock ORT runs it): what the container decompresses to. */
  readonly onnx: Uint8Array;
  /** The container, when Huffman coding ran. */
  readonly container: Uint8Array | undefined;
  readonly pruned: PrunedWeight[];
  readonly report: WeightOnlyReport;
  readonly coded: readonly CodedTensor[];
  readonly plain: readonly PlainTensor[];
}

/** Bits of a pruned fp32 weight stored as non-zeros with relative indices. */
function sparseFloatBytes(data: Float32Array): number {
  const nonZero = Uint8Array.from(data, (x) => (x === 0 ? 0 : 1));
  const g = bestGapBits(nonZero, 0, 32);
  let entries = 0;
  let run = 0;
  const maxGap = 2 ** g - 1;
  for (const z of nonZero) {
    if (z === 0) {
      if (run === maxGap) {
        entries++;
        run = 0;
      } else run++;
    } else {
      entries++;
      run = 0;
    }
  }
  return Math.ceil((entries * (32 + g)) / 8);
}

export async function compressModel(input: Uint8Array, options: CompressOptions = {}): Promise<CompressResult> {
  const sparsity = checkSparsity(options.prune ?? 0, '`prune`');
  const bits = checkKMeansBits(options.kmeansBits ?? 4, sparsity > 0 ? 2 : 1);
  const huffman = options.huffman ?? true;
  const steps = 2 + (sparsity > 0 ? 1 : 0) + (huffman ? 1 : 0);
  let step = 0;
  const tick = (what: string) => options.progress?.(step++, steps, what);
  const model = modelFromProto(decodeModel(input, 'model'), { label: 'model' });
  const fp32Bytes = totalInitializerBytes(model);
  const stages: StageRow[] = [];
  const row = (
    stage: CompressStage,
    bytes: number,
    fileBytes: number,
    quality: StageQuality | undefined,
    note: string,
  ): StageRow => ({
    stage,
    bytes,
    ratio: fp32Bytes / bytes,
    fileBytes,
    fileRatio: input.length / fileBytes,
    quality,
    note,
  });
  tick('evaluating fp32');
  stages.push(row('fp32', fp32Bytes, input.length, await options.evaluate?.(input), ''));

  foldBatchNorm(model);
  let pruned: PrunedWeight[] = [];
  if (sparsity > 0) {
    tick(`pruning to ${sparsity}`);
    let tuned = 'one shot, not fine-tuned';
    if (options.trainer) {
      const targets = compressibleSites(model, { exclude: options.exclude }).map((s) => s.weight.name);
      tuned = await options.trainer.prune(model, targets, sparsity);
      pruned = prunedWeights(model, targets);
    } else pruned = pruneModel(model, { sparsity, exclude: options.exclude });
    let bytes = totalInitializerBytes(model);
    for (const p of pruned) {
      const data = model.graph.initializers.get(p.weight)?.load().data as Float32Array;
      bytes += sparseFloatBytes(data) - 4 * data.length;
    }
    const onnx = encodeModel(modelToProto(model));
    const zeros = pruned.reduce((s, p) => s + p.zeros, 0);
    const elements = pruned.reduce((s, p) => s + p.elements, 0);
    stages.push(
      row(
        'pruned',
        bytes,
        onnx.length,
        await options.evaluate?.(onnx),
        `${pruned.length} weights, ${((100 * zeros) / Math.max(1, elements)).toFixed(1)} % zeros; ${tuned}`,
      ),
    );
  }

  tick(`k-means ${bits}-bit`);
  const kmeansOf = (
    data: Float32Array,
    dims: readonly number[],
    name: string,
    axis: number | undefined,
    zero: boolean,
  ) =>
    quantizeKMeansWeights(data, dims, {
      bits,
      axis,
      seed: options.seed ?? 1,
      init: options.kmeansInit ?? 'linear',
      zeroCode: zero,
      name,
    });
  // The codebooks, computed here so that training can tune them before they are written.
  const kmeansWeights = new Map<string, KMeansWeights>();
  for (const site of compressibleSites(model, { exclude: options.exclude })) {
    const w = site.weight;
    const axis = options.perChannel ? outputChannelAxis(site) : undefined;
    kmeansWeights.set(w.name, kmeansOf(w.load().data as Float32Array, w.dims, w.name, axis, sparsity > 0));
  }
  // BitShift (the tables' unpacking) is opset 11; a model that cannot be raised keeps its tables.
  const tableNames =
    options.tables !== false && ensureOpset(model, 11).ok ? sharedTables(model, { exclude: options.exclude }) : [];
  for (const name of tableNames) {
    const t = model.graph.initializers.get(name);
    if (t) kmeansWeights.set(name, kmeansOf(t.load().data as Float32Array, t.dims, name, undefined, false));
  }
  const kmeansOptions = {
    scheme: 'kmeans',
    bits,
    perChannel: options.perChannel,
    keepZeros: sparsity > 0,
    exclude: options.exclude,
  } as const;
  /** The model's weights and tables replaced by codebooks `ws`, its small tensors rounded. */
  const share = (m: Model, ws: ReadonlyMap<string, KMeansWeights>) => {
    const { report } = quantizeModel(m, { ...kmeansOptions, kmeansWeights: ws });
    const tables = new Map(tableNames.flatMap((n) => (ws.has(n) ? [[n, ws.get(n) as KMeansWeights] as const] : [])));
    const layouts = [
      ...report.layers.flatMap((l): KMeansLayout[] => (l.kmeans ? [l.kmeans] : [])),
      ...emitKMeansTables(m, tables),
    ];
    const rounded =
      options.float16Vectors === false
        ? { names: [], maxRelative: 0 }
        : roundVectorsToFloat16(m, new Set(layouts.map((l) => l.codebook)));
    return { report, layouts, rounded };
  };
  let tuned = 'not fine-tuned';
  let weights: ReadonlyMap<string, KMeansWeights> = kmeansWeights;
  if (options.trainer) {
    const copy = modelFromProto(decodeModel(encodeModel(modelToProto(model)), 'model'), { label: 'model' });
    share(copy, kmeansWeights);
    const q = await options.evaluate?.(encodeModel(modelToProto(copy)));
    const t = await options.trainer.kmeans(model, kmeansWeights);
    weights = t.tuned;
    tuned = `${t.note}${q ? `; before fine-tuning ${qualityText(q)}` : ''}`;
  }
  const { report, layouts, rounded } = share(model, weights);
  const onnx = encodeModel(modelToProto(model));
  // The Huffman stage's tables and bitstreams, from the container's encoder.
  const probe = compressKMeansModel(onnx, layouts);
  let quantizedBytes = totalInitializerBytes(model);
  let huffmanBytes = quantizedBytes;
  for (const t of probe.tensors) {
    const packed = Math.ceil((t.count * t.slot) / 8);
    huffmanBytes += codedBytes(t) - packed;
  }
  for (const p of probe.plain) huffmanBytes += plainBytes(p) - 4 * p.count;
  for (const name of rounded.names) {
    const t = model.graph.initializers.get(name);
    quantizedBytes -= 2 * (t?.dims.reduce((a, b) => a * b, 1) ?? 0);
  }
  for (const w of weights.values()) {
    // Fixed-width fields before entropy coding: sparse entries where they are smaller.
    const slot = indexSlotBits(w.bits);
    let bitsNeeded = w.codes.length * w.bits;
    if (w.zeroCode) {
      const g = bestGapBits(w.codes, 0, w.bits);
      bitsNeeded = Math.min(bitsNeeded, encodeSparse(w.codes, 0, g).codes.length * (w.bits + g));
    }
    quantizedBytes += Math.ceil(bitsNeeded / 8) - Math.ceil((w.codes.length * slot) / 8);
  }
  const sharedNote = tableNames.length > 0 ? ` (and ${tableNames.join(', ')}, unpruned)` : '';
  const roundNote =
    rounded.names.length > 0
      ? `; ${rounded.names.length} small tensors rounded to binary16 (largest relative change ${rounded.maxRelative.toExponential(1)})`
      : '';
  stages.push(
    row(
      'quantized',
      quantizedBytes,
      onnx.length,
      await options.evaluate?.(onnx),
      `${layouts.length} weights${sharedNote}, ${bits}-bit codebooks${options.perChannel ? ' per channel' : ''}${roundNote}; ONNX file weights ${totalInitializerBytes(model)} bytes; ${tuned}`,
    ),
  );

  let container: Uint8Array | undefined;
  if (huffman) {
    tick('Huffman coding');
    container = probe.bytes;
    const back = decompressModel(container, 'compressed');
    // An internal check: a container that does not decode to its model is a bug, not a user error.
    if (!sameBytes(back.onnx, onnx)) throw new Error('the compressed container does not decode to its model');
    stages.push(
      row(
        'huffman',
        huffmanBytes,
        container.length,
        stages[stages.length - 1]?.quality,
        'decodes bit-exact to the quantized model',
      ),
    );
  }
  options.progress?.(steps, steps, 'done');
  return { stages, onnx, container, pruned, report, coded: probe.tensors, plain: probe.plain };
}

function qualityText(q: StageQuality): string {
  return q.metric === 'accuracy' ? `accuracy ${(100 * q.value).toFixed(2)} %` : `perplexity ${q.value.toFixed(4)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

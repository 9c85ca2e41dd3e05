import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { pruneModel, type PrunedWeight } from '../passes/prune.js';
import { totalInitializerBytes, type WeightOnlyReport } from '../passes/weight-only/index.js';
import type { KMeansLayout } from '../passes/weight-only/types.js';
import { checkKMeansBits } from '../quant/kmeans-weights.js';
import { checkSparsity } from '../quant/prune.js';
import { bestGapBits } from '../quant/sparse-gaps.js';
import {
  codedBytes,
  compressKMeansModel,
  decompressModel,
  fixedWidthBits,
  type CodedTensor,
} from './compressed-model.js';
import { quantizeModel } from './quantize.js';

/*
 * Deep Compression (Han, Mao, Dally 2016) as a pipeline over an ONNX model: magnitude pruning,
 * k-means weight sharing of what is left (zeros kept exact), Huffman coding of the indices and
 * of the sparse entries' relative indices. Each stage's size is counted as the paper counts it:
 *   fp32       every initializer, 4 bytes an element
 *   pruned     a pruned weight as its non-zeros (32 bits each) with relative indices of the
 *              width that stores it smallest (fillers included); other tensors as they are
 *   quantized  indices (bits each, sparse as above) and the fp32 codebooks
 *   huffman    Huffman tables and bitstreams instead of the indices
 * and each stage's file (fileBytes): the fp32 and pruned ONNX models, the k-means ONNX model, and
 * the container (docs/compressed-format.md), whose graph and small tensors weigh as much as the
 * ONNX model's.
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
  readonly quality: StageQuality | undefined;
  readonly note: string;
}

export interface CompressOptions {
  /** Fraction of each weight to prune by magnitude (0 or absent: no pruning). */
  readonly prune?: number | undefined;
  /** k-means index width (absent: 4). */
  readonly kmeansBits?: number | undefined;
  readonly perChannel?: boolean | undefined;
  readonly seed?: number | undefined;
  /** Huffman-code the result into the container (default true). */
  readonly huffman?: boolean | undefined;
  readonly exclude?: readonly string[] | undefined;
  readonly evaluate?: ((onnx: Uint8Array) => Promise<StageQuality>) | undefined;
  /** Called after pruning and after k-means: a training loop that fine-tunes `model` in place. */
  readonly finetune?: ((stage: 'pruned' | 'quantized', model: Model) => Promise<string>) | undefined;
  readonly progress?: ((done: number, total: number, step: string) => void) | undefined;
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
  ): StageRow => ({ stage, bytes, ratio: fp32Bytes / bytes, fileBytes, quality, note });
  tick('evaluating fp32');
  stages.push(row('fp32', fp32Bytes, input.length, await options.evaluate?.(input), ''));

  foldBatchNorm(model);
  let pruned: PrunedWeight[] = [];
  if (sparsity > 0) {
    tick(`pruning to ${sparsity}`);
    pruned = pruneModel(model, { sparsity, exclude: options.exclude });
    const tuned = (await options.finetune?.('pruned', model)) ?? 'not fine-tuned';
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
  const { report } = quantizeModel(model, {
    scheme: 'kmeans',
    bits,
    perChannel: options.perChannel,
    seed: options.seed,
    keepZeros: sparsity > 0,
    exclude: options.exclude,
  });
  const layouts = report.layers.flatMap((l): KMeansLayout[] => (l.kmeans ? [l.kmeans] : []));
  const tuned = (await options.finetune?.('quantized', model)) ?? 'not fine-tuned';
  const onnx = encodeModel(modelToProto(model));
  // The fixed-width count needs the sparse entries, which the container's encoder computes.
  const probe = compressKMeansModel(onnx, layouts);
  let quantizedBytes = totalInitializerBytes(model);
  let huffmanBytes = quantizedBytes;
  for (const t of probe.tensors) {
    const packed = Math.ceil((t.count * t.slot) / 8);
    quantizedBytes += Math.ceil(fixedWidthBits(t) / 8) - packed;
    huffmanBytes += codedBytes(t) - packed;
  }
  stages.push(
    row(
      'quantized',
      quantizedBytes,
      onnx.length,
      await options.evaluate?.(onnx),
      `${layouts.length} weights, ${bits}-bit codebooks${options.perChannel ? ' per channel' : ''}; ONNX file weights ${totalInitializerBytes(model)} bytes; ${tuned}`,
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
  return { stages, onnx, container, pruned, report, coded: probe.tensors };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

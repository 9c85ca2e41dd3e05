import type { Graph, GraphNode, Initializer, Model } from '../../graph/model.js';
import type { Bnb4Weights } from '../../quant/bnb4-quant.js';
import type { KMeansWeights } from '../../quant/kmeans-weights.js';
import type { Int8Weights } from '../../quant/int8-quant.js';
import type { NBitsWeights } from '../../quant/nbits-quant.js';
import type { SpqrWeights } from '../../quant/spqr.js';
import type { SuperBlockWeights } from '../../quant/superblock.js';
import type { Bnb4Key, Int8Key, NBitsKey, ReadonlyResultMap } from './result-key.js';
import type { SchemeName, WeightOnlyScheme } from './scheme.js';
import type { TensorStore } from './dq-storage.js';

export interface WeightOnlyOptions {
  readonly scheme: SchemeName;
  /** MatMulNBits / MatMulBnb4 block size (default: the scheme's, 32 for q4, 64 for nf4/fp4). */
  readonly blockSize?: number | undefined;
  /** Op types (MatMul, Conv ...) or node / weight names left in fp32. */
  readonly exclude?: readonly string[] | undefined;
  /** Keep the first and the last weight-consuming layer (in execution order) in fp32. */
  readonly keepFirstLast?: boolean | undefined;
  /** nf4/fp4: double-quantize the absmax constants (stored dequantized; see quant/bnb4-quant.ts). */
  readonly doubleQuant?: boolean | undefined;
  /** q4/q4-asym: 'native' = MatMulNBits (default), 'qdq' = opset-21 blocked DequantizeLinear + MatMul. */
  readonly format?: 'native' | 'qdq' | undefined;
  /** Plain round-to-nearest scales (ONNX Runtime's quantizer), no per-block search. */
  readonly rtn?: boolean | undefined;
  /**
   * q4/q4-asym/q8-block (MatMulNBits): its accuracy_level attribute, the least precision ONNX
   * Runtime may compute in. 0 (default, attribute left out): fp32, what the weights promise;
   * 4: ORT may quantize the activations to int8 per block at run time (faster at batch 1 on x86,
   * approximate; nbits-handler.ts says what it cost on the shipped LM).
   */
  readonly accuracyLevel?: 0 | 1 | 2 | 3 | 4 | undefined;
  /**
   * 2/3/4-bit MatMulNBits schemes: HQQ's data-free zero-point optimisation (quant/hqq.ts), stored
   * as float zero points (asymmetric whatever the scheme's symmetry).
   */
  readonly hqq?: boolean | undefined;
  /**
   * 4-bit weights with float zero points (HQQ, q4-k): 'split' (default) writes MatMulNBits with
   * its default zero point 8 plus a per-block correction X·R·C (R sums X over each block, C[b, n]
   * = s·(8 − z)), which ONNX Runtime runs on its fast path at one row; 'inline' writes the float
   * zero points as MatMulNBits' fourth input (exactly ORT's dequantization, ~10–30× slower at one row).
   */
  readonly floatZeroPoints?: 'split' | 'inline' | undefined;
  /**
   * Fold outlier norm scales into the weights first (default true). False when that was done
   * already and the weights rescaled since (AWQ, flows/awq.ts), which a second fold would undo.
   */
  readonly equalizeNorms?: boolean | undefined;
  /** MatMulNBits schemes: this fraction of the weights (whole input rows) kept in fp16 beside the low-bit weight. */
  readonly outliers?: number | undefined;
  /**
   * q4/q4-asym/q8-block/nf4/fp4: also quantize Gather embedding tables (GatherBlockQuantized at
   * the scheme's bits; int8 rows for nf4/fp4 and for tables tied to a head). Off by default: the
   * table is usually small next to the MatMuls and costs quality.
   */
  readonly quantizeEmbeddings?: boolean | undefined;
  /** kmeans: index width 1…8 (k = 2^bits centroids; default 4). */
  readonly bits?: number | undefined;
  /** kmeans: one codebook per output channel instead of one per tensor. */
  readonly perChannel?: boolean | undefined;
  /** kmeans: seed of the k-means++ seeding (default 1). */
  readonly seed?: number | undefined;
  /**
   * kmeans: results made ahead, by weight name (fine-tuned codebooks: train/compress-finetune.ts);
   * a weight found here is written as given instead of clustered again.
   */
  readonly kmeansWeights?: ReadonlyMap<string, KMeansWeights> | undefined;
  /** kmeans: keep zero weights exactly zero (code 0), clustering the others (pruned models). */
  readonly keepZeros?: boolean | undefined;
  /** fp16: op types kept in fp32 (with Casts around them); default DEFAULT_FP16_BLOCK_LIST. */
  readonly fp16BlockList?: readonly string[] | undefined;
  /**
   * Results computed ahead by the very kernels the handlers call (flows/quantize-pool.ts runs
   * them on worker threads); a handler takes the one under its key instead of computing it.
   */
  readonly precomputed?: PrecomputedWeights | undefined;
  /** Called as weights are done (`step` names the stage), for a progress bar. */
  readonly progress?: ((done: number, total: number, step: string) => void) | undefined;
}

export interface PrecomputedWeights {
  /** By view and options (nbits-handler.ts, gather-handler.ts). */
  readonly nbits: ReadonlyResultMap<NBitsKey, NBitsWeights>;
  /** By weight and axis (dq-storage.ts). */
  readonly int8: ReadonlyResultMap<Int8Key, Int8Weights>;
  /** By view and options (bnb4-handler.ts): nf4/fp4 results computed ahead (GPTQ). */
  readonly bnb4?: ReadonlyResultMap<Bnb4Key, Bnb4Weights> | undefined;
  /** q3-spqr results computed ahead (GPTQ order on the calibration data; flows/gptq.ts). */
  readonly spqr?: ReadonlyResultMap<NBitsKey, SpqrWeights> | undefined;
  /** q4-k results computed ahead (GPTQ with the super-block quantizer). */
  readonly superBlock?: ReadonlyResultMap<NBitsKey, SuperBlockWeights> | undefined;
  /** Weights whose results above came from GPTQ (calibration data): the report's form says so. */
  readonly gptq?: ReadonlySet<string> | undefined;
}

/** One weight tensor (shared by one or more nodes): what was done to it. */
export interface LayerReport {
  /** Consumer node names (more than one for tied weights). */
  nodes: string[];
  opTypes: string[];
  weight: string;
  dims: number[];
  /** Scheme applied, or 'fp32' when left alone. */
  scheme: string;
  /** Graph form, e.g. 'DequantizeLinear(axis=1)', 'MatMulNBits', or '' when skipped. */
  form: string;
  /** SQNR of the stored weight against the original (dB); null when unchanged, Infinity when exact. */
  sqnrDb: number | null;
  bytesBefore: number;
  bytesAfter: number;
  /**
   * Bytes of the layer in a packed format ONNX Runtime cannot run, when the file stores it
   * wider (k-quant super-blocks: the file holds the dequantized float scales).
   */
  trueBytes?: number;
  /** Why it was left in fp32, or notes (clamped values, double-quant savings). */
  note: string;
  /** kmeans: where its indices and codebook are (flows/compressed-model.ts entropy-codes them). */
  kmeans?: KMeansLayout;
}

/** A k-means weight as written (passes/weight-only/kmeans-handler.ts). */
export interface KMeansLayout {
  /** uint8 initializer of the indices, packed `8 / slot` to a byte, first in the high bits. */
  readonly indices: string;
  /** float32 initializer of the codebooks ([k], [C, k] or [k, C]). */
  readonly codebook: string;
  /** Indices (the weight's element count). */
  readonly count: number;
  readonly bits: number;
  readonly slot: number;
  /** Code 0 is an exact zero that every zero weight takes (pruned weights). */
  readonly zeroCode: boolean;
}

export interface WeightOnlyReport {
  scheme: string;
  blockSize: number | null;
  layers: LayerReport[];
  totals: {
    /** All initializer bytes before and after (what the weights of the file weigh). */
    bytesBefore: number;
    bytesAfter: number;
    ratio: number;
    quantizedLayers: number;
    skippedLayers: number;
  };
  /** Model-level notes: opset raised, BN folded, values clamped, etc. */
  notes: string[];
}

/** A node that reads a weight initializer in its weight slot. */
export interface WeightSite {
  readonly node: GraphNode;
  readonly slot: number;
  readonly weight: Initializer;
}

export interface HandlerContext {
  readonly model: Model;
  readonly graph: Graph;
  readonly scheme: WeightOnlyScheme;
  readonly options: WeightOnlyOptions;
  readonly blockSize: number;
  /** Makes a fresh value/initializer name. */
  readonly name: (base: string) => string;
  /** Nodes to put at the front of the graph (DequantizeLinear / Cast of initializers). */
  readonly prologue: GraphNode[];
  readonly notes: string[];
}

/** Rewrites every eligible site of one weight; returns the report row. */
export interface WeightHandler {
  /** Why the site cannot take this scheme, or undefined when it can. */
  reject(site: WeightSite, ctx: HandlerContext): string | undefined;
  /** Model-level preparation (opset, domain imports); a string is a reason to skip everything. */
  prepare?(ctx: HandlerContext): string | undefined;
  apply(
    weight: string,
    sites: readonly WeightSite[],
    ctx: HandlerContext,
  ): Omit<LayerReport, 'nodes' | 'opTypes' | 'weight' | 'dims' | 'bytesBefore' | 'bytesAfter'> & { addedBytes: number };
  /**
   * Storage schemes (any reader can take the widened value): how a float tensor outside a weight
   * slot is stored (other-tensors.ts). Absent: such tensors stay fp32.
   */
  store?: TensorStore;
}

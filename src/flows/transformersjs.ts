import { QuantkitError } from '../errors.js';
import type { Model } from '../graph/model.js';
import type { DynamicReport } from '../passes/activation/dynamic.js';
import type { Target } from '../passes/activation/weight-form.js';
import type { PrecomputedWeights, WeightOnlyReport } from '../passes/weight-only/types.js';
import { quantizeDynamicModel } from './calibrate.js';
import { quantizeModel } from './quantize.js';

/*
 * What transformers.js loads, and how quantkit writes each of its `dtype` files (in memory; the
 * folder side is transformersjs-file.ts). From @huggingface/transformers 4.x:
 * utils/dtypes.js (suffixes), models/session.js and utils/model-loader.js (external data, read
 * only when config.json's `transformers.js_config.use_external_data_format` says so; chunks
 * X.onnx_data, X.onnx_data_1, …).
 */

export const TJS_DTYPES = ['fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const;
export type TjsDtype = (typeof TJS_DTYPES)[number];

/** File-name suffix per dtype (DEFAULT_DTYPE_SUFFIX_MAPPING); fp32 is the part's own file. */
export const TJS_SUFFIX: Readonly<Record<TjsDtype | 'fp32', string>> = {
  fp32: '',
  fp16: '_fp16',
  int8: '_int8',
  uint8: '_uint8',
  q8: '_quantized',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};

/** Suffixes transformers.js knows beyond ours (newer releases), so their files are not taken for parts. */
const OTHER_SUFFIXES = ['_q2', '_q2f16', '_q1', '_q1f16'];

export function isTjsDtype(s: string): s is TjsDtype {
  return (TJS_DTYPES as readonly string[]).includes(s);
}

export function parseTjsDtypes(list: readonly string[]): TjsDtype[] {
  const out: TjsDtype[] = [];
  for (const d of list) {
    if (!isTjsDtype(d))
      throw new QuantkitError(
        'QK_UNKNOWN_SCHEME',
        `unknown transformers.js dtype '${d}'`,
        `use some of ${TJS_DTYPES.join(', ')} (fp32 is the part itself)`,
      );
    if (!out.includes(d)) out.push(d);
  }
  return out;
}

/** `onnx/<part><suffix>.onnx`. */
export function tjsFileName(part: string, dtype: TjsDtype | 'fp32'): string {
  return `${part}${TJS_SUFFIX[dtype]}.onnx`;
}

/** The part a file of onnx/ is, or undefined for a dtype file of some part. */
export function partOfFile(file: string): string | undefined {
  if (!file.endsWith('.onnx')) return undefined;
  const base = file.slice(0, -'.onnx'.length);
  const suffixes = [...Object.values(TJS_SUFFIX).filter((s) => s !== ''), ...OTHER_SUFFIXES];
  return suffixes.some((s) => base.endsWith(s)) ? undefined : base;
}

/**
 * How a dtype file is made. 'quantkit': our defaults (q4 with scale search, GPTQ when
 * calibration data is given, pair-safe s8, fp16 with long reductions kept fp32). 'legacy':
 * transformers.js's former conversion script (scripts/quantize.py + convert.py, ONNX Runtime's
 * quantizers) reproduced with our schemes, to measure against.
 */
export type TjsRecipe = 'quantkit' | 'legacy';

/** Ops for which the former script chose u8 weights for q8 (its QUINT8_OPS). */
export const QUINT8_OPS: readonly string[] = ['Conv', 'GroupQueryAttention', 'MultiHeadAttention'];

/**
 * model_type values for which the former convert.py turned `per_channel` and `reduce_range` off
 * (NO_PER_CHANNEL_REDUCE_RANGE_MODELS): their q8/int8 weights were per-tensor, full range.
 * Every other model got per-channel seven-bit weights.
 */
export const LEGACY_PER_TENSOR_MODEL_TYPES: ReadonlySet<string> = new Set([
  'codegen',
  'gpt2',
  'gpt_bigcode',
  'gptj',
  'gpt-neo',
  'gpt-neox',
  'mpt',
  'bloom',
  'llama',
  'gemma',
  'opt',
  'mistral',
  'falcon',
  'phi',
  'phi3',
  'qwen2',
  'stablelm',
  'starcoder2',
  'openelm',
  'whisper',
  'vision-encoder-decoder',
  'owlv2',
  'wavlm',
  'wav2vec2',
  'unispeech',
  'unispeech-sat',
]);

/**
 * The former script's fp16 op block list (onnxconverter-common's, less the ai.onnx.ml ops no
 * transformer holds): LayerNormalization and Softmax ran in fp16 there.
 */
export const LEGACY_FP16_BLOCK_LIST: readonly string[] = [
  'Resize',
  'Upsample',
  'TopK',
  'CumSum',
  'Min',
  'Max',
  'Range',
  'RandomNormalLike',
  'RandomUniformLike',
  'NonMaxSuppression',
  'RoiAlign',
];

/**
 * Gather tables go to GatherBlockQuantized (q4, q4f16) when they hold at least this share of the
 * part's float weight bytes: there they shrink the file measurably; below it they cost quality
 * (README: "off by default: they cost quality for little size") for a few per cent of size.
 */
export const EMBEDDING_SHARE = 0.15;

export type EmbeddingChoice = 'auto' | 'on' | 'off';

/** Bytes of float initializers read by a Gather as its table (input 0), and of all float initializers. */
export function embeddingShare(model: Model): { table: number; total: number } {
  const g = model.graph;
  const tables = new Set(g.nodes.filter((n) => n.opType === 'Gather' && n.domain === '').map((n) => n.inputs[0]));
  let table = 0;
  let total = 0;
  for (const [name, init] of g.initializers) {
    if (init.dtype !== 'float32' && init.dtype !== 'float16') continue;
    const bytes = init.dims.reduce((a, b) => a * b, 1) * (init.dtype === 'float32' ? 4 : 2);
    total += bytes;
    if (tables.has(name)) table += bytes;
  }
  return { table, total };
}

export function quantizeEmbeddingsFor(model: Model, choice: EmbeddingChoice): boolean {
  if (choice !== 'auto') return choice === 'on';
  const { table, total } = embeddingShare(model);
  return total > 0 && table / total >= EMBEDDING_SHARE;
}

export interface TjsRewriteOptions {
  readonly recipe?: TjsRecipe | undefined;
  /** config.json's model_type (the legacy q8 rule reads it). */
  readonly modelType?: string | undefined;
  readonly embeddings?: EmbeddingChoice | undefined;
  /** The CPU q8/int8 files are for (passes/activation/weight-form.ts): pair-safe s8 by default, full range for vnni|arm|wasm. */
  readonly target?: Target | undefined;
  /**
   * Weights quantized ahead for this part (GPTQ's, flows/gptq.ts, or worker threads',
   * flows/quantize-pool.ts), used by q4 and q4f16 (scheme q4) and bnb4 (nf4); the pass quantizes
   * any weight they lack.
   */
  readonly weights?: TjsPrecomputed | undefined;
}

export interface TjsPrecomputed {
  readonly q4?: PrecomputedWeights | undefined;
  readonly nf4?: PrecomputedWeights | undefined;
  /** They are GPTQ's (the table says so). */
  readonly gptq: boolean;
}

export interface TjsRewriteResult {
  /** What was written, in a few words (the table's "how" column). */
  readonly how: string;
  readonly notes: string[];
  readonly weightOnly?: WeightOnlyReport | undefined;
  readonly dynamic?: DynamicReport | undefined;
}

function hasOp(model: Model, ops: readonly string[]): boolean {
  return model.graph.nodes.some((n) => ops.includes(n.opType));
}

/** The int8-dynamic options of q8/int8/uint8 under each recipe. */
function eightBit(model: Model, dtype: 'q8' | 'int8' | 'uint8', o: TjsRewriteOptions): TjsRewriteResult {
  const unsigned = dtype === 'uint8' || (dtype === 'q8' && hasOp(model, QUINT8_OPS));
  if (o.recipe === 'legacy') {
    const perTensor = o.modelType !== undefined && LEGACY_PER_TENSOR_MODEL_TYPES.has(o.modelType);
    const r = quantizeDynamicModel(model, {
      ...(unsigned
        ? { weightType: 'uint8' as const }
        : { weightGranularity: perTensor ? ('tensor' as const) : ('channel' as const) }),
      weightForm: perTensor ? 'full' : 'seven-bit',
    });
    const how = unsigned
      ? 'MatMulInteger, u8 weights per channel'
      : `MatMulInteger, s8 weights per ${perTensor ? 'tensor, full range' : 'channel, seven-bit'}`;
    return { how, notes: r.notes, dynamic: r };
  }
  const r = quantizeDynamicModel(model, unsigned ? { weightType: 'uint8' } : { target: o.target });
  return {
    how: unsigned
      ? 'MatMulInteger, u8 weights per channel'
      : `MatMulInteger, s8 weights per channel, ${r.weights.form}`,
    notes: r.notes,
    dynamic: r,
  };
}

/**
 * Rewrites `model` (an fp32 part, freshly read) into the dtype's form. fp16 and q4f16 keep fp32
 * graph inputs and outputs (Casts at the edges, as transformers.js's files have them), so the
 * types transformers.js reads from the session for past_key_values are the fp32 part's.
 */
export function rewriteForDtype(model: Model, dtype: TjsDtype, o: TjsRewriteOptions = {}): TjsRewriteResult {
  const legacy = o.recipe === 'legacy';
  const fp16BlockList = legacy ? LEGACY_FP16_BLOCK_LIST : undefined;
  switch (dtype) {
    case 'fp16': {
      const r = quantizeModel(model, { scheme: 'fp16', fp16BlockList });
      return { how: 'fp16 graph, fp32 inputs/outputs', notes: r.report.notes, weightOnly: r.report };
    }
    case 'q4':
    case 'q4f16': {
      const embeddings = !legacy && quantizeEmbeddingsFor(model, o.embeddings ?? 'auto');
      const precomputed = o.weights?.q4;
      const r = quantizeModel(model, {
        scheme: 'q4',
        rtn: legacy,
        quantizeEmbeddings: embeddings,
        ...(precomputed ? { precomputed } : {}),
      });
      const notes = [...r.report.notes];
      let how = `MatMulNBits 4-bit/32 ${legacy ? 'RTN' : o.weights?.gptq ? 'GPTQ' : 'scale search'}${embeddings ? ', GatherBlockQuantized' : ''}`;
      if (dtype === 'q4f16') {
        const h = quantizeModel(model, { scheme: 'fp16', fp16BlockList });
        notes.push(...h.report.notes);
        how += ', fp16 graph';
      }
      return { how, notes, weightOnly: r.report };
    }
    case 'bnb4': {
      const precomputed = o.weights?.nf4;
      const r = quantizeModel(model, { scheme: 'nf4', ...(precomputed ? { precomputed } : {}) });
      return { how: `MatMulBnb4 NF4/64${o.weights?.gptq ? ' GPTQ' : ''}`, notes: r.report.notes, weightOnly: r.report };
    }
    case 'q8':
    case 'int8':
    case 'uint8':
      return eightBit(model, dtype, o);
  }
}

export interface WrittenDataFiles {
  /** The .onnx file name, e.g. model_q4.onnx. */
  readonly file: string;
  readonly part: string;
  /** Data files beside it (0: none). */
  readonly chunks: number;
}

/**
 * config.json's text with `transformers.js_config.use_external_data_format` set for the files
 * written, every other key and value kept (JSON re-serialized with the file's indent). The
 * loader reads a number per file name, else per part name, else a global value
 * (utils/model-loader.js resolveExternalDataFormat), so a file written without data gets an
 * explicit 0 when its part's entry or a global value would say otherwise, and a global value
 * becomes per-file (each other .onnx of the folder, `others`, keeping it). Undefined: no change.
 */
export function updateTjsConfig(
  text: string,
  written: readonly WrittenDataFiles[],
  others: readonly string[],
): string | undefined {
  const config = JSON.parse(text) as Record<string, unknown>;
  const tjs = (config['transformers.js_config'] ?? {}) as Record<string, unknown>;
  const before = tjs['use_external_data_format'];
  const resolve = (value: unknown, file: string, part: string): number => {
    if (!value) return 0;
    if (typeof value === 'object') {
      const v = value as Record<string, unknown>;
      if (Object.hasOwn(v, file)) return Number(v[file]);
      if (Object.hasOwn(v, part)) return Number(v[part]);
      return 0;
    }
    return Number(value);
  };
  if (written.every((w) => resolve(before, w.file, w.part) === w.chunks)) return undefined;
  let perFile: Record<string, unknown>;
  if (!before) perFile = {};
  else if (typeof before === 'object') perFile = { ...(before as Record<string, unknown>) };
  else perFile = Object.fromEntries(others.map((f) => [f, before]));
  for (const w of written) {
    delete perFile[w.file];
    if (resolve(perFile, w.file, w.part) !== w.chunks) perFile[w.file] = w.chunks;
  }
  const next = { ...config, 'transformers.js_config': { ...tjs, use_external_data_format: perFile } };
  const indent = /^\{\n(\s+)"/.exec(text)?.[1] ?? '  ';
  return `${JSON.stringify(next, null, indent)}\n`;
}

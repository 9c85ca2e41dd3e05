import { OptionError, QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { encodeSafetensors, readSafetensorsHeader, readSafetensorsTensor } from '../io/safetensors/index.js';
import { bytesSource } from '../io/source.js';
import { adapterTensors, loraTargets, mergeLora, peftKey, type LoraAdapter, type LoraTarget } from '../passes/lora.js';
import { LORA_BASES, prepareLora, transpose2d, type BaseBytes, type LoraBase } from '../passes/lora-graph.js';
import { makeTensor } from '../tensor/tensor.js';
import { makeDataset, type ExampleData } from '../train/data.js';
import { trainLoop, type StepInfo, type TrainHistory } from '../train/loop.js';
import { LOSSES } from '../train/losses.js';
import { dequantizeFrozenNf4, freezeNf4, NF4_BASE_BLOCK } from '../train/nf4-base.js';
import { tf, useBackend, type TrainBackend } from '../train/tf.js';
import { scoreEngine, type EngineScore } from './qat.js';
import { quantizeModel } from './quantize.js';

/*
 * `lora`: LoRA / QLoRA fine-tuning of a language model, in memory and browser-safe. The model's
 * projections (and, on request, its MLP) get rank-r adapters trained in fp32 with Adam on the
 * next-token cross-entropy, over a frozen base held either in fp32 or, QLoRA's way, as NF4 codes
 * with double-quantized constants. The adapters come back as PEFT-named safetensors, and merged
 * into the model (W + (α/r)·B·A over the base the adapters were trained on) in fp32 or
 * re-quantized.
 */

export type LoraMergeScheme = 'fp32' | 'nf4' | 'q4';
export const LORA_MERGE_SCHEMES: readonly LoraMergeScheme[] = ['fp32', 'nf4', 'q4'];
export { LORA_BASES, type LoraBase };

export interface LoraOptions {
  /** Adapter rank r (default 8). */
  readonly rank?: number | undefined;
  /** α: the adapters' output is scaled by α / r (default 16). */
  readonly alpha?: number | undefined;
  /** Dropout on the adapters' input while training (default 0.05). */
  readonly dropout?: number | undefined;
  /** Adapt the MLP's weights too (default: the attention projections only). */
  readonly mlp?: boolean | undefined;
  /** The frozen base: 'nf4' (QLoRA, default) or 'fp32' (plain LoRA). */
  readonly base?: LoraBase | undefined;
  /** NF4 block size of the base (default 64). */
  readonly blockSize?: number | undefined;
  /** Default 1. */
  readonly epochs?: number | undefined;
  /** Adam's learning rate (default 1e-3). */
  readonly lr?: number | undefined;
  /** Default 32. */
  readonly batchSize?: number | undefined;
  /** Seeds the shuffles, A's initialization and the dropout masks (default 0). */
  readonly seed?: number | undefined;
  readonly maxSteps?: number | undefined;
  /** Default 'cpu'. */
  readonly backend?: TrainBackend | undefined;
  readonly wasmPaths?: string | undefined;
  /** Held-out token windows scored before and after training. */
  readonly evaluate?: ExampleData | undefined;
  /** Also merge the adapters into the model, written in this form. */
  readonly merge?: LoraMergeScheme | undefined;
  readonly onStep?: ((s: StepInfo) => void) | undefined;
  readonly label?: string | undefined;
}

export interface LoraHistory extends TrainHistory {
  /** The held-out windows through the base alone (adapters at zero), and after training. */
  readonly before: EngineScore | undefined;
  readonly after: EngineScore | undefined;
}

export interface LoraResult {
  /** The adapters as safetensors, PEFT-named (`base_model.model.<module>.lora_A.weight`). */
  readonly adapter: Uint8Array;
  readonly modules: readonly string[];
  readonly rank: number;
  readonly alpha: number;
  readonly base: LoraBase;
  readonly baseBytes: BaseBytes;
  /** Trainable parameters (the adapters). */
  readonly parameters: number;
  readonly history: LoraHistory;
  /** The merged model, when asked. */
  readonly merged: { readonly bytes: Uint8Array; readonly scheme: LoraMergeScheme } | undefined;
}

function checked(
  value: number | undefined,
  fallback: number,
  name: string,
  ok: (v: number) => boolean,
  what: string,
): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || !ok(v))
    throw new OptionError('QK_BAD_OPTION', `\`${name}\` ${v} is not ${what}`, `give \`${name}\` ${what}`, [name]);
  return v;
}

function oneOf<T extends string>(value: T | undefined, fallback: T, allowed: readonly T[], name: string): T {
  const v = value ?? fallback;
  if (!allowed.includes(v))
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`${name}\` '${v}' is not one of ${allowed.join(', ')}`,
      `use ${allowed.join(' or ')}`,
      [name],
    );
  return v;
}

function loadModel(bytes: Uint8Array, label: string): Model {
  return modelFromProto(decodeModel(bytes, label), { label });
}

/** A target's weight as the adapters were trained over it: fp32, or its NF4 + double-quantized form dequantized. */
function baseWeight(model: Model, t: LoraTarget, base: LoraBase, blockSize: number): Float32Array {
  const w = model.graph.initializers.get(t.weight)?.load().data as Float32Array;
  if (base === 'fp32') return w;
  const wt = t.transposed ? w : transpose2d(w, t.inFeatures, t.outFeatures);
  const back = dequantizeFrozenNf4(freezeNf4(wt, t.outFeatures, t.inFeatures, blockSize));
  return t.transposed ? back : transpose2d(back, t.outFeatures, t.inFeatures);
}

export interface MergeOptions {
  readonly rank: number;
  readonly alpha: number;
  readonly base: LoraBase;
  readonly blockSize?: number | undefined;
  readonly scheme: LoraMergeScheme;
}

/** Merges adapters (by target weight) into `model` in place; returns the model in the asked form. */
export function mergeAdapters(
  model: Model,
  targets: readonly LoraTarget[],
  adapters: ReadonlyMap<string, LoraAdapter>,
  o: MergeOptions,
): Model {
  const blockSize = o.blockSize ?? NF4_BASE_BLOCK;
  for (const t of targets) {
    if (!adapters.has(t.weight)) continue;
    const w = baseWeight(model, t, o.base, blockSize);
    const dims = model.graph.initializers.get(t.weight)?.dims ?? [];
    model.graph.initializers.set(
      t.weight,
      memoryInitializer(t.weight, makeTensor('float32', [...dims], Float32Array.from(w))),
    );
  }
  mergeLora(model, targets, adapters, o.rank, o.alpha / o.rank);
  if (o.scheme === 'fp32') return model;
  return quantizeModel(model, o.scheme === 'nf4' ? { scheme: 'nf4', doubleQuant: true } : { scheme: 'q4' }).model;
}

/**
 * Merges a saved adapter file (this module's safetensors: PEFT names, r / lora_alpha / base in
 * its metadata) into the model it was trained on.
 */
export function mergeAdapterFile(
  modelBytes: Uint8Array,
  adapterBytes: Uint8Array,
  options: {
    readonly scheme?: LoraMergeScheme | undefined;
    readonly label?: string | undefined;
    readonly adapterLabel?: string | undefined;
  } = {},
): Uint8Array {
  const label = options.label ?? '<model>';
  const src = bytesSource(adapterBytes, options.adapterLabel ?? '<adapter>');
  const header = readSafetensorsHeader(src);
  const meta = header.metadata;
  const rank = Number(meta.r);
  const alpha = Number(meta.lora_alpha);
  const base = meta.base as LoraBase;
  if (!(rank > 0) || !(alpha > 0) || !LORA_BASES.includes(base))
    throw new QuantkitError(
      'QK_LORA_ADAPTER',
      `${src.label}: the metadata has no valid r, lora_alpha and base (${JSON.stringify(meta)})`,
      'give an adapter file written by quantkit lora',
    );
  const model = loadModel(modelBytes, label);
  const byName = new Map(header.tensors.map((e) => [e.name, e]));
  const targets = loraTargets(model, { mlp: true });
  const adapters = new Map<string, LoraAdapter>();
  for (const t of targets) {
    const a = byName.get(peftKey(t.module, 'A'));
    const b = byName.get(peftKey(t.module, 'B'));
    if (!a || !b) continue;
    adapters.set(t.weight, {
      A: readSafetensorsTensor(src, a).data as Float32Array,
      B: readSafetensorsTensor(src, b).data as Float32Array,
    });
  }
  const known = new Set(targets.flatMap((t) => [peftKey(t.module, 'A'), peftKey(t.module, 'B')]));
  const stray = header.tensors.filter((e) => !known.has(e.name));
  if (adapters.size === 0 || stray.length > 0)
    throw new QuantkitError(
      'QK_LORA_ADAPTER',
      `${src.label}: ${stray.length > 0 ? `tensor '${stray[0]?.name}' names no linear layer of ${label}` : `no adapter names a linear layer of ${label}`}`,
      'merge an adapter into the model it was trained on',
    );
  const merged = mergeAdapters(model, targets, adapters, {
    rank,
    alpha,
    base,
    blockSize: Number(meta.block_size) || undefined,
    scheme: options.scheme ?? 'fp32',
  });
  return encodeModel(modelToProto(merged));
}

export async function lora(modelBytes: Uint8Array, data: ExampleData, options: LoraOptions = {}): Promise<LoraResult> {
  const label = options.label ?? '<model>';
  const rank = checked(options.rank, 8, 'rank', (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
  const alpha = checked(options.alpha, 16, 'alpha', (v) => v > 0, 'a positive number');
  const dropout = checked(options.dropout, 0.05, 'dropout', (v) => v >= 0 && v < 1, 'in [0, 1)');
  const epochs = checked(options.epochs, 1, 'epochs', (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
  const lr = checked(options.lr, 1e-3, 'lr', (v) => v > 0, 'a positive number');
  const batchSize = checked(
    options.batchSize,
    32,
    'batchSize',
    (v) => Number.isInteger(v) && v >= 1,
    'a positive integer',
  );
  const blockSize = checked(
    options.blockSize,
    NF4_BASE_BLOCK,
    'blockSize',
    (v) => Number.isInteger(v) && v >= 2 && v % 2 === 0,
    'an even integer ≥ 2',
  );
  const base = oneOf(options.base, 'nf4', LORA_BASES, 'base');
  const mergeScheme =
    options.merge === undefined ? undefined : oneOf(options.merge, 'fp32', LORA_MERGE_SCHEMES, 'merge');
  const seed = options.seed ?? 0;
  await useBackend(options.backend ?? 'cpu', { wasmPaths: options.wasmPaths });
  const model = loadModel(modelBytes, label);
  const inputName = model.graph.inputs[0]?.name ?? '';
  const dataset = makeDataset('lm', inputName, data);
  const held = options.evaluate ? makeDataset('lm', inputName, options.evaluate) : undefined;
  const smallest = Math.min(
    ...loraTargets(model, { mlp: options.mlp }).map((t) => Math.min(t.inFeatures, t.outFeatures)),
  );
  if (rank > smallest) {
    throw new OptionError(
      'QK_BAD_OPTION',
      `\`rank\` ${rank} exceeds the smallest adapted dimension of ${label} (${smallest})`,
      `give \`rank\` ≤ ${smallest} (a few percent of it is usual: 4 to 16)`,
      ['rank'],
    );
  }
  const graph = prepareLora(model, { rank, alpha, dropout, mlp: options.mlp, base, blockSize, seed, label });
  try {
    graph.mode = 'eval';
    const before = held ? scoreEngine(graph, 'lm', held, batchSize) : undefined;
    graph.mode = 'train';
    const optimizer = tf.train.adam(lr);
    const history = trainLoop({ variables: () => graph.variables(), forward: (x) => graph.forward(x) }, dataset, {
      epochs,
      batchSize,
      seed,
      optimizer,
      loss: LOSSES.lm,
      maxSteps: options.maxSteps,
      onStep: options.onStep,
    });
    optimizer.dispose();
    graph.mode = 'eval';
    const after = held ? scoreEngine(graph, 'lm', held, batchSize) : undefined;
    const adapters = graph.adapters();
    const adapter = encodeSafetensors(adapterTensors(graph.targets, adapters, rank), {
      format: 'pt',
      r: String(rank),
      lora_alpha: String(alpha),
      lora_dropout: String(dropout),
      base,
      block_size: String(blockSize),
      target_modules: graph.targets.map((t) => t.module).join(','),
    });
    let merged: LoraResult['merged'];
    if (mergeScheme) {
      const fresh = loadModel(modelBytes, label);
      const m = mergeAdapters(fresh, loraTargets(fresh, { mlp: options.mlp }), adapters, {
        rank,
        alpha,
        base,
        blockSize,
        scheme: mergeScheme,
      });
      merged = { bytes: encodeModel(modelToProto(m)), scheme: mergeScheme };
    }
    return {
      adapter,
      modules: graph.targets.map((t) => t.module),
      rank,
      alpha,
      base,
      baseBytes: graph.baseBytes,
      parameters: graph.targets.reduce((s, t) => s + rank * (t.inFeatures + t.outFeatures), 0),
      history: { ...history, before, after },
      merged,
    };
  } finally {
    graph.dispose();
  }
}

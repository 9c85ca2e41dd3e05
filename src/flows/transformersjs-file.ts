import { rowCosineAndTop1 } from '../quant/metrics.js';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { OptionError, QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model, ValueInfo } from '../graph/model.js';
import { parseExternalDataRef } from '../io/onnx/external.js';
import { TensorProto_DataLocation, type ModelProto } from '../io/onnx/proto.js';
import { planOnnxWrite } from '../io/onnx/write.js';
import { readCalibFiles } from '../node/calib-files.js';
import { modelDirFiles, writeFileAtomic } from '../node/files.js';
import { openOnnxFile } from '../node/model-file.js';
import { dataFileName, writeOnnxModel } from '../node/model-writer.js';
import type { Target } from '../passes/activation/weight-form.js';
import type { PrecomputedWeights } from '../passes/weight-only/types.js';
import { mulberry32 } from '../quant/prng.js';
import { storageBytes } from '../tensor/dtype.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';
import { skeletonOf, tensorsToWriteOf } from './convert.js';
import { gptqPrecompute } from './gptq.js';
import { DEFAULT_EXTERNAL_OUTPUT_BYTES } from './quantize-file.js';
import { precomputeWeights, type PoolOptions } from './quantize-pool.js';
import {
  partOfFile,
  quantizeEmbeddingsFor,
  rewriteForDtype,
  TJS_DTYPES,
  tjsFileName,
  updateTjsConfig,
  type EmbeddingChoice,
  type TjsDtype,
  type TjsPrecomputed,
  type TjsRecipe,
  type WrittenDataFiles,
} from './transformersjs.js';
import { verifyOutput } from './verify-output.js';

/*
 * `quantkit transformersjs <folder>`: every requested dtype file of every part in onnx/, written
 * beside it under transformers.js's names, each atomically (an interrupted run leaves finished
 * files only), external data as X.onnx_data with config.json's transformers.js_config told, and
 * a quality row per file against the fp32 part in ONNX Runtime.
 */

export interface TransformersJsOptions {
  readonly dtypes?: readonly TjsDtype[] | undefined;
  /** `[name=]x.npy` calibration files (token ids): GPTQ for q4, q4f16 and bnb4, and the quality inputs. */
  readonly calib?: readonly string[] | undefined;
  readonly force?: boolean | undefined;
  readonly recipe?: TjsRecipe | undefined;
  readonly embeddings?: EmbeddingChoice | undefined;
  /** q8/int8 weight form by CPU (`target`): pair-safe s8 for any CPU by default. */
  readonly target?: Target | undefined;
  /** Worker threads for the 4-bit weights of big parts (flows/quantize-pool.ts). */
  readonly pool?: PoolOptions | undefined;
  /** Output weight bytes from which a file gets external data (default 1 GiB). */
  readonly externalThreshold?: number | undefined;
  /** Load and run every written file in ONNX Runtime (default true). */
  readonly verify?: boolean | undefined;
  /** Compare every written file with fp32 (default true). */
  readonly quality?: boolean | undefined;
  /** Called when a file is about to be made and when it is written. */
  readonly onStep?: ((done: number, total: number, step: string) => void) | undefined;
}

export interface TjsQuality {
  /** Mean cosine similarity of the first output's last-axis vectors with fp32's. */
  readonly cosine: number;
  /** Share of positions whose argmax matches fp32's (for an output named logits). */
  readonly top1: number | undefined;
  /** What the inputs were. */
  readonly inputs: string;
}

export interface TjsRow {
  readonly part: string;
  readonly dtype: TjsDtype | 'fp32';
  readonly file: string;
  /** The .onnx plus its data file. */
  readonly bytes: number;
  readonly ratio: number;
  readonly how: string;
  readonly dataFile: string | undefined;
  readonly quality: TjsQuality | undefined;
  readonly notes: readonly string[];
}

export interface TransformersJsResult {
  readonly rows: TjsRow[];
  /** config.json was rewritten (use_external_data_format). */
  readonly configUpdated: boolean;
  readonly notes: string[];
}

const SYNTHETIC_SAMPLES = 4;
const SYNTHETIC_LENGTH = 32;

interface Folder {
  readonly dir: string;
  readonly onnxDir: string;
  readonly configPath: string;
  readonly config: Record<string, unknown>;
  readonly parts: string[];
}

function readFolder(dir: string): Folder {
  const configPath = join(dir, 'config.json');
  const onnxDir = join(dir, 'onnx');
  if (!existsSync(configPath) || !existsSync(onnxDir))
    throw new QuantkitError(
      'QK_TJS_NOT_A_MODEL_FOLDER',
      `${dir} is not a transformers.js model folder (${existsSync(configPath) ? 'no onnx/ folder' : 'no config.json'})`,
      'give the folder that holds config.json and onnx/<part>.onnx (e.g. onnx/model.onnx)',
    );
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new QuantkitError(
      'QK_TJS_BAD_CONFIG',
      `${configPath} is not valid JSON (${(e as Error).message})`,
      'fix config.json; it is read for model_type and transformers.js_config',
    );
  }
  const parts = readdirSync(onnxDir)
    .map(partOfFile)
    .filter((p): p is string => p !== undefined)
    .sort();
  if (parts.length === 0)
    throw new QuantkitError(
      'QK_TJS_NOT_A_MODEL_FOLDER',
      `${onnxDir} holds no fp32 part (<part>.onnx without a dtype suffix)`,
      'export the model to ONNX first (e.g. onnx/model.onnx)',
    );
  return { dir, onnxDir, configPath, config, parts };
}

function configNumber(config: Record<string, unknown>, keys: readonly string[]): number | undefined {
  const text = config['text_config'] as Record<string, unknown> | undefined;
  for (const k of keys) {
    const v = config[k] ?? text?.[k];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  return undefined;
}

function symbolicZero(dims: ValueInfo['dims'], batch: number): number[] {
  return (dims ?? []).map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : 0));
}

/**
 * Feeds for a text part from token ids [batch, T]: attention_mask ones, token_type_ids zeros,
 * position_ids 0…T−1, past key/values empty (symbolic dims 0, batch kept), use_cache_branch
 * false. Undefined when the part has an input none of these covers.
 */
function textFeeds(
  inputs: readonly ValueInfo[],
  ids: BigInt64Array,
  batch: number,
  T: number,
): Map<string, Tensor> | undefined {
  const feeds = new Map<string, Tensor>();
  const fill = (v: bigint) => ({
    dtype: 'int64' as const,
    dims: [batch, T],
    data: new BigInt64Array(batch * T).fill(v),
  });
  for (const v of inputs) {
    const n = v.name;
    if (n === 'input_ids' || n === 'decoder_input_ids') feeds.set(n, { dtype: 'int64', dims: [batch, T], data: ids });
    else if (n === 'attention_mask' || n === 'decoder_attention_mask') feeds.set(n, fill(1n));
    else if (n === 'token_type_ids') feeds.set(n, fill(0n));
    else if (n === 'position_ids') {
      const data = new BigInt64Array(batch * T);
      for (let b = 0; b < batch; b++) for (let t = 0; t < T; t++) data[b * T + t] = BigInt(t);
      feeds.set(n, { dtype: 'int64', dims: [batch, T], data });
    } else if (n.startsWith('past_') && (v.dtype === 'float32' || v.dtype === 'float16')) {
      const dims = symbolicZero(v.dims, batch);
      const count = elementCount(dims);
      feeds.set(n, {
        dtype: v.dtype,
        dims,
        data: v.dtype === 'float32' ? new Float32Array(count) : new Uint16Array(count),
      } as Tensor);
    } else if (n === 'use_cache_branch') feeds.set(n, { dtype: 'bool', dims: [1], data: new Uint8Array(1) } as Tensor);
    else return undefined;
  }
  return feeds;
}

function syntheticIds(vocab: number, batch: number, T: number): BigInt64Array {
  const rand = mulberry32(1234);
  return BigInt64Array.from({ length: batch * T }, () => BigInt(Math.floor(rand() * vocab)));
}

interface Samples {
  readonly feeds: Map<string, Tensor>;
  readonly label: string;
}

/** The quality inputs: the calibration token ids (first 8 rows) or seeded synthetic ones. */
function samplesFor(model: Model, folder: Folder, calibIds: Tensor | undefined): Samples | undefined {
  if (calibIds && calibIds.data instanceof BigInt64Array && calibIds.dims.length === 2) {
    const [n, T] = calibIds.dims as [number, number];
    const batch = Math.min(n, 8);
    const feeds = textFeeds(model.graph.inputs, calibIds.data.subarray(0, batch * T), batch, T);
    if (feeds) return { feeds, label: `${batch} calibration rows of ${T} ids` };
  }
  const vocab = configNumber(folder.config, ['vocab_size']);
  if (vocab === undefined) return undefined;
  const context = configNumber(folder.config, ['max_position_embeddings', 'n_positions', 'n_ctx']);
  const T = Math.min(SYNTHETIC_LENGTH, context ?? SYNTHETIC_LENGTH);
  const feeds = textFeeds(model.graph.inputs, syntheticIds(vocab, SYNTHETIC_SAMPLES, T), SYNTHETIC_SAMPLES, T);
  return feeds ? { feeds, label: `${SYNTHETIC_SAMPLES} × ${T} seeded random token ids` } : undefined;
}

function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor(t.dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
}

async function firstOutput(path: string, feeds: Map<string, Tensor>): Promise<{ name: string; tensor: ort.Tensor }> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const name = session.outputNames[0] as string;
    const out = await session.run(Object.fromEntries([...feeds].map(([k, t]) => [k, toOrt(t)])), [name]);
    return { name, tensor: out[name] as ort.Tensor };
  } finally {
    await session.release();
  }
}

function asFloat32(t: ort.Tensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  // float16 outputs (a part exported with fp16 outputs): decode through Float32Array.from on the
  // runtime's own conversion.
  return Float32Array.from(t.data as ArrayLike<number>);
}

/** Cosine per last-axis vector, averaged; argmax agreement when `top1`. */
function compare(ref: ort.Tensor, got: ort.Tensor, top1: boolean): { cosine: number; top1: number | undefined } {
  const width = Number(ref.dims[ref.dims.length - 1] ?? 1) || 1;
  const r = rowCosineAndTop1(asFloat32(ref), asFloat32(got), width);
  return { cosine: r.cosine, top1: top1 ? r.top1 : undefined };
}

function fileBytes(path: string, dataPath: string | undefined): number {
  return statSync(path).size + (dataPath && existsSync(dataPath) ? statSync(dataPath).size : 0);
}

/** The calibration token ids, and every input of `model` filled around them (GPTQ's data). */
function calibrationFor(model: Model, calib: readonly string[]): { ids: Tensor; data: Map<string, Tensor> } {
  const names = model.graph.inputs.map((v) => v.name);
  const read = readCalibFiles(calib, names);
  const idsName = ['input_ids', 'decoder_input_ids'].find((n) => read.has(n));
  const ids = idsName ? read.get(idsName) : undefined;
  if (!ids || !(ids.data instanceof BigInt64Array) || ids.dims.length !== 2)
    throw new OptionError(
      'QK_TJS_BAD_CALIB',
      `\`calib\` needs the token ids as int64 [samples, length] for input_ids (got ${[...read.keys()].join(', ') || 'none'})`,
      'pass input_ids=ids.npy with int64 [N, T] token ids; the other text inputs are filled in',
      ['calib'],
    );
  const [n, T] = ids.dims as [number, number];
  const filled = textFeeds(model.graph.inputs, ids.data, n, T);
  if (!filled)
    throw new OptionError(
      'QK_TJS_BAD_CALIB',
      `the part's inputs (${names.join(', ')}) are not all text inputs quantkit can fill in from token ids`,
      'pass a `calib` file for each other input as name=x.npy, or drop `calib`',
      ['calib'],
    );
  for (const [k, t] of read) filled.set(k, t);
  return { ids, data: filled };
}

/** The files a part reads: itself and each distinct external data file (none may be overwritten). */
function inputFiles(path: string, proto: ModelProto): string[] {
  const files = new Set([path]);
  for (const p of proto.graph?.initializer ?? [])
    if (p.dataLocation === TensorProto_DataLocation.EXTERNAL)
      files.add(join(dirname(path), parseExternalDataRef(p).location));
  return [...files];
}

/**
 * config.json's use_external_data_format set for `written` (every other key kept), atomically;
 * false when it already says so.
 */
async function updateConfig(folder: Folder, written: readonly WrittenDataFiles[]): Promise<boolean> {
  const others = readdirSync(folder.onnxDir).filter((f) => f.endsWith('.onnx') && !written.some((w) => w.file === f));
  const next = updateTjsConfig(readFileSync(folder.configPath, 'utf8'), written, others);
  if (next === undefined) return false;
  await writeFileAtomic(folder.configPath, [new TextEncoder().encode(next)], { force: true });
  return true;
}

/** Every output path the run would write, checked before anything is written. */
function plannedOutputs(folder: Folder, dtypes: readonly TjsDtype[]): string[] {
  return folder.parts.flatMap((part) => dtypes.map((d) => join(folder.onnxDir, tjsFileName(part, d))));
}

export async function writeTransformersJs(dir: string, o: TransformersJsOptions = {}): Promise<TransformersJsResult> {
  const folder = readFolder(resolve(dir));
  const dtypes = o.dtypes ?? TJS_DTYPES;
  const force = o.force ?? false;
  const threshold = o.externalThreshold ?? DEFAULT_EXTERNAL_OUTPUT_BYTES;
  const modelType = typeof folder.config['model_type'] === 'string' ? folder.config['model_type'] : undefined;
  const notes: string[] = [];
  if (!force) {
    const existing = plannedOutputs(folder, dtypes).filter((p) => existsSync(p));
    if (existing.length > 0)
      throw new OptionError(
        'QK_OUTPUT_EXISTS',
        `${existing[0]} already exists${existing.length > 1 ? ` (and ${existing.length - 1} more of the files to write)` : ''}`,
        'pass `force` to replace them, or choose other `dtypes`',
        ['force', 'dtypes'],
      );
  }
  const rows: TjsRow[] = [];
  let configUpdated = false;
  const total = folder.parts.length * dtypes.length;
  let done = 0;
  for (const part of folder.parts) {
    const inPath = join(folder.onnxDir, tjsFileName(part, 'fp32'));
    const open = () => {
      const file = openOnnxFile(inPath);
      return { file, model: modelFromProto(file.proto, { external: file.external, label: inPath }) };
    };
    // fp32: the reference row, its outputs on the quality inputs, calibration and GPTQ.
    const ref = open();
    const inputs = inputFiles(inPath, ref.file.proto);
    let calib: ReturnType<typeof calibrationFor> | undefined;
    let weights: TjsPrecomputed = { gptq: false };
    let samples: Samples | undefined;
    let refOut: { name: string; tensor: ort.Tensor } | undefined;
    try {
      const legacy = o.recipe === 'legacy';
      const wants = (d: TjsDtype[]) => d.some((x) => dtypes.includes(x));
      const quantizeEmbeddings = !legacy && quantizeEmbeddingsFor(ref.model, o.embeddings ?? 'auto');
      const ahead = async (scheme: 'q4' | 'nf4'): Promise<PrecomputedWeights | undefined> => {
        const fresh = open();
        try {
          if (calib) {
            o.onStep?.(done, total, `${part}: GPTQ (${scheme})`);
            return (await gptqPrecompute(fresh.model, { scheme }, calib.data)).precomputed;
          }
          // Big parts: their weights quantized on worker threads, once for q4 and q4f16.
          const files = modelDirFiles(inPath);
          try {
            return await precomputeWeights(
              fresh.model,
              { scheme, rtn: legacy && scheme === 'q4', quantizeEmbeddings: scheme === 'q4' && quantizeEmbeddings },
              files,
              o.pool,
            );
          } finally {
            files.close();
          }
        } finally {
          fresh.file.close();
        }
      };
      if (o.calib?.length && !legacy) calib = calibrationFor(ref.model, o.calib);
      weights = {
        q4: wants(['q4', 'q4f16']) ? await ahead('q4') : undefined,
        nf4: wants(['bnb4']) ? await ahead('nf4') : undefined,
        gptq: calib !== undefined,
      };
      if (o.quality !== false) {
        samples = samplesFor(ref.model, folder, calib?.ids);
        if (samples) refOut = await firstOutput(inPath, samples.feeds);
        else notes.push(`${part}: no quality column (inputs other than text inputs, and no \`calib\` for them)`);
      }
    } finally {
      ref.file.close();
    }
    const fp32Bytes = inputs.reduce((s, f) => s + (existsSync(f) ? statSync(f).size : 0), 0);
    rows.push({
      part,
      dtype: 'fp32',
      file: tjsFileName(part, 'fp32'),
      bytes: fp32Bytes,
      ratio: 1,
      how: 'as exported',
      dataFile: undefined,
      quality:
        refOut && samples
          ? { cosine: 1, top1: refOut.name === 'logits' ? 1 : undefined, inputs: samples.label }
          : undefined,
      notes: [],
    });

    for (const dtype of dtypes) {
      const fileName = tjsFileName(part, dtype);
      const outPath = join(folder.onnxDir, fileName);
      o.onStep?.(done, total, `${part} ${dtype}`);
      const { file, model } = open();
      let dataPath: string | undefined;
      let how: string;
      let rowNotes: string[];
      try {
        const r = rewriteForDtype(model, dtype, {
          recipe: o.recipe,
          modelType,
          embeddings: o.embeddings,
          target: o.target,
          weights,
        });
        how = r.how;
        rowNotes = r.notes;
        const tensors = tensorsToWriteOf(model, file.external);
        const bytesOut = tensors.reduce((s, t) => s + storageBytes(t.dtype, elementCount(t.dims)), 0);
        const external = bytesOut >= threshold;
        const plan = planOnnxWrite(skeletonOf(model), tensors, {
          externalData: external ? true : 'auto',
          dataLocation: dataFileName(outPath, 'onnx_data'),
        });
        const w = await writeOnnxModel(outPath, plan, { force, inputs });
        dataPath = w.dataPath;
        // A data file left from an earlier run of this dtype would be read if config said so.
        const stale = join(folder.onnxDir, `${fileName}_data`);
        if (!dataPath && force && existsSync(stale)) rmSync(stale);
        await verifyOutput(w, `transformersjs ${dtype}`, { verify: o.verify });
        // config.json follows each file at once, so a run stopped later leaves every finished file loadable.
        const entry: WrittenDataFiles = { file: fileName, part, chunks: dataPath ? 1 : 0 };
        if (await updateConfig(folder, [entry])) configUpdated = true;
      } finally {
        file.close();
      }
      let quality: TjsQuality | undefined;
      if (refOut && samples) {
        const got = await firstOutput(outPath, samples.feeds);
        const c = compare(refOut.tensor, got.tensor, refOut.name === 'logits');
        quality = { ...c, inputs: samples.label };
      }
      const bytes = fileBytes(outPath, dataPath);
      rows.push({
        part,
        dtype,
        file: fileName,
        bytes,
        ratio: bytes / fp32Bytes,
        how,
        dataFile: dataPath,
        quality,
        notes: rowNotes,
      });
      done++;
      o.onStep?.(done, total, `${part} ${dtype}`);
    }
  }

  return { rows, configUpdated, notes };
}

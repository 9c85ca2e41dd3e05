import { OptionError, QuantkitError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { bytesSource, type ByteSource } from '../io/source.js';
import { readNpy } from '../io/npy/npy.js';
import { readExternalTensorBytes, parseExternalDataRef } from '../io/onnx/external.js';
import { decodeModel, encodeModel, TensorProto_DataLocation, type TensorProto } from '../io/onnx/proto.js';
import type { OnnxWritePlan } from '../io/onnx/write.js';
import type { WeightOnlyReport } from '../passes/weight-only/index.js';
import type { SchemeName } from '../passes/weight-only/scheme.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ActivationReport, CalibrationData } from '../flows/calibrate.js';
import { inspectModel, type InspectReport } from '../flows/inspect.js';
import { planQuantizedOutput } from '../flows/model-output.js';
import { quantizeLoadedModel, type LoadedModelOptions } from '../flows/quantize.js';
import type { OnnxRuntime } from '../flows/runtime.js';
import { quantizeActivationModel, type ActivationQuantizeOptions } from '../flows/activation-quantize.js';
import { schemeRow, type ActivationScheme, type AnySchemeName } from '../flows/schemes.js';

/*
 * The library API for browsers: whole models in and out as bytes (or Blob-backed ByteSources),
 * the same steps as `quantkit quantize` (flows/quantize-file.ts, flows/activation-file.ts) minus
 * files, worker threads and GPTQ, so the page writes the bytes the CLI writes. ONNX Runtime comes
 * in as an argument (ortWebRuntime below wraps onnxruntime-web).
 */

/** A model and the external data files it names, by location (as written in the model). */
export interface ModelInput {
  readonly model: Uint8Array | ByteSource;
  readonly external?: Readonly<Record<string, Uint8Array | ByteSource>> | undefined;
  /** For messages: the file name. */
  readonly label?: string | undefined;
}

/** Calibration arrays: .npy bytes or tensors, by input name; one unnamed array binds the first input. */
export type CalibInput = Uint8Array | Tensor | Readonly<Record<string, Uint8Array | Tensor>>;

/**
 * `quantkit quantize`'s options in library terms (the CLI flag of each: cli/option-flags.ts): the
 * weight-only pass's and the activation schemes' own option types, so an option either gains
 * reaches the page too; minus what runs on Node only (GPTQ's results, worker threads) or is internal.
 */
type WeightOnlyBytesOptions = Omit<
  LoadedModelOptions,
  'scheme' | 'progress' | 'precomputed' | 'kmeansWeights' | 'gptq' | 'equalizeNorms'
>;
type ActivationBytesOptions = Omit<ActivationQuantizeOptions, 'scheme' | 'progress'>;

export interface QuantizeBytesOptions extends WeightOnlyBytesOptions, ActivationBytesOptions {
  readonly scheme: AnySchemeName;
  /** int8-static calibration inputs (GPTQ for the 4-bit schemes runs on Node only). */
  readonly calib?: CalibInput | undefined;
  /** Weights of at least this many bytes put the output's weights in a data file (default 1 GiB). */
  readonly externalThreshold?: number | undefined;
  /** Write a data file whatever the size. */
  readonly externalData?: boolean | undefined;
  /** The data file's name as the .onnx refers to it (default 'model.onnx_data'). */
  readonly dataLocation?: string | undefined;
  /** Called as work is done: weights quantized, or calibration samples run. */
  readonly progress?: ((done: number, total: number, step: string) => void) | undefined;
}

export type QuantizeReport =
  ({ family: 'weight-only' } & WeightOnlyReport) | ({ family: 'activation' } & ActivationReport);

export interface QuantizedModel {
  readonly report: QuantizeReport;
  /** The output, produced chunk by chunk as it is iterated (a Blob can take the chunks). */
  readonly plan: OnnxWritePlan;
}

function sourceOf(b: Uint8Array | ByteSource, label: string): ByteSource {
  return b instanceof Uint8Array ? bytesSource(b, label) : b;
}

function readAll(src: ByteSource): Uint8Array {
  return src.read(0, src.size);
}

/** The model decoded, its external tensors read on demand from the given files. */
export function openModel(input: ModelInput): {
  model: Model;
  external: (p: TensorProto) => Uint8Array;
  hadExternal: boolean;
} {
  const label = input.label ?? 'model.onnx';
  const proto = decodeModel(readAll(sourceOf(input.model, label)), label);
  const files = new Map(Object.entries(input.external ?? {}).map(([k, v]) => [k, sourceOf(v, k)]));
  const open = (location: string): ByteSource => {
    const f = files.get(location) ?? files.get(location.split('/').pop() ?? location);
    if (f) return f;
    throw new QuantkitError(
      'QK_FILE_NOT_FOUND',
      `the external data file '${location}' of ${label} was not given`,
      `pick it together with the .onnx (both files, or their folder)`,
    );
  };
  const external = (p: TensorProto) => readExternalTensorBytes(p, { open });
  const hadExternal = (proto.graph?.initializer ?? []).some(
    (p) => p.dataLocation === TensorProto_DataLocation.EXTERNAL,
  );
  return { model: modelFromProto(proto, { external, label }), external, hadExternal };
}

/** The external data locations a model names (to ask the user for the right files). */
export function externalLocations(modelBytes: Uint8Array): string[] {
  const proto = decodeModel(modelBytes, 'model.onnx');
  const out = new Set<string>();
  for (const p of proto.graph?.initializer ?? [])
    if (p.dataLocation === TensorProto_DataLocation.EXTERNAL) out.add(parseExternalDataRef(p).location);
  return [...out];
}

/** `quantkit inspect` of a model in memory. */
export function inspectModelBytes(input: Uint8Array | ModelInput): InspectReport {
  return inspectModel(openModel(input instanceof Uint8Array ? { model: input } : input).model);
}

function calibrationData(model: Model, calib: CalibInput): CalibrationData {
  const toTensor = (v: Uint8Array | Tensor, name: string) => (v instanceof Uint8Array ? readNpy(v, `${name}.npy`) : v);
  const first = model.graph.inputs[0]?.name ?? 'input';
  if (calib instanceof Uint8Array || 'dtype' in calib) return new Map([[first, toTensor(calib as Uint8Array, first)]]);
  return new Map(Object.entries(calib).map(([k, v]) => [k, toTensor(v, k)]));
}

/**
 * Quantizes a model with any scheme but GPTQ; the output is planned, produced as it is read.
 * `runtime` is needed by int8-static only (its calibration runs the model).
 */
export async function quantizeModelSource(
  input: ModelInput,
  o: QuantizeBytesOptions,
  runtime?: OnnxRuntime,
): Promise<QuantizedModel> {
  const row = schemeRow(o.scheme);
  const { model, external, hadExternal } = openModel(input);
  // The passes' own options; the output files, the calibration arrays and progress wording are handled here.
  const { scheme: _s, calib, externalThreshold: _t, externalData: _d, dataLocation: _l, progress, ...passOptions } = o;
  const dataLocation = o.dataLocation ?? 'model.onnx_data';
  if (row.family === 'weight-only') {
    if (o.calib !== undefined)
      throw new OptionError(
        'QK_GPTQ_NOT_IN_BROWSER',
        `\`calib\` with \`scheme\` ${o.scheme} asks for GPTQ, which runs on Node only (it binds onnxruntime-node)`,
        'drop `calib` for the data-free rounding, or run quantkit quantize with `calib` on Node',
        ['calib', 'scheme'],
      );
    // quantizeFile's steps (flows/quantize-file.ts) without its worker threads and GPTQ.
    const report = await quantizeLoadedModel(model, {
      ...passOptions,
      scheme: o.scheme as SchemeName,
      keepFirstLast: o.keepFirstLast ?? false,
      doubleQuant: o.doubleQuant ?? false,
      rtn: o.rtn ?? false,
      quantizeEmbeddings: o.quantizeEmbeddings ?? false,
      progress,
    });
    const plan = planQuantizedOutput(model, external, {
      hadExternal: hadExternal || o.externalData === true,
      externalThreshold: o.externalThreshold,
      dataLocation,
    });
    return { report: { family: 'weight-only', ...report }, plan };
  }
  if (o.scheme === 'int8-static' && o.calib !== undefined && !runtime)
    throw new QuantkitError(
      'QK_BAD_OPTION',
      'int8-static runs the model to calibrate it and no ONNX Runtime was given',
      'pass one, e.g. ortWebRuntime(ort) with onnxruntime-web',
    );
  // quantizeActivationFile's steps (flows/activation-file.ts), the arrays from bytes.
  const { report } = await quantizeActivationModel(
    runtime as OnnxRuntime,
    model,
    calib === undefined ? undefined : () => calibrationData(model, calib),
    {
      ...passOptions,
      scheme: o.scheme as ActivationScheme,
      activationType: o.activationType ?? 'uint8',
      perToken: o.perToken ?? false,
      keepFirstLast: o.keepFirstLast ?? false,
      progress: progress
        ? (done, total, pass, passes) => progress(done, total, `calibration pass ${pass}/${passes}`)
        : undefined,
    },
  );
  // As the CLI writes these: one self-contained file.
  const bytes = encodeModel(modelToProto(model));
  return { report: { family: 'activation', ...report }, plan: inlinePlan(bytes) };
}

function inlinePlan(bytes: Uint8Array): OnnxWritePlan {
  return {
    external: false,
    dataLocation: undefined,
    dataSize: 0,
    tensors: [],
    *modelChunks() {
      yield bytes;
    },
    *dataChunks() {
      /* self-contained */
    },
  };
}

function concat(chunks: Iterable<Uint8Array>): Uint8Array {
  const parts = [...chunks];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * `quantkit quantize` in memory: model bytes in, `{ bytes, report }` out (and `data`, the data
 * file's bytes, when the output has one).
 */
export async function quantizeModelBytes(
  input: Uint8Array | ModelInput,
  options: QuantizeBytesOptions,
  runtime?: OnnxRuntime,
): Promise<{
  bytes: Uint8Array;
  data: Uint8Array | undefined;
  dataLocation: string | undefined;
  report: QuantizeReport;
}> {
  const q = await quantizeModelSource(input instanceof Uint8Array ? { model: input } : input, options, runtime);
  return {
    bytes: concat(q.plan.modelChunks()),
    data: q.plan.external ? concat(q.plan.dataChunks()) : undefined,
    dataLocation: q.plan.dataLocation,
    report: q.report,
  };
}

/** A model with every external tensor read in, for runtimes given one buffer. */
export function inlinedModelBytes(input: ModelInput): Uint8Array {
  const label = input.label ?? 'model.onnx';
  const bytes = readAll(sourceOf(input.model, label));
  const { external, hadExternal } = openModel(input);
  if (!hadExternal) return bytes;
  const proto = decodeModel(bytes, label);
  for (const p of proto.graph?.initializer ?? []) {
    if (p.dataLocation !== TensorProto_DataLocation.EXTERNAL) continue;
    p.rawData = external(p) as Uint8Array<ArrayBuffer>;
    p.dataLocation = TensorProto_DataLocation.DEFAULT;
    p.externalData = [];
  }
  return encodeModel(proto);
}

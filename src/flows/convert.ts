import { extname, join, dirname, resolve } from 'node:path';
import { OptionError, QuantkitError } from '../errors.js';
import { dtypeFromOnnx, dtypeInfo } from '../tensor/dtype.js';
import { TensorProto_DataLocation, type ModelProto, type TensorProto } from '../io/onnx/proto.js';
import { parseExternalDataRef } from '../io/onnx/external.js';
import { planOnnxWrite, tensorFromProtoToWrite, tensorToWrite, type TensorToWrite } from '../io/onnx/write.js';
import {
  readSafetensorsHeader,
  readSafetensorsTensor,
  safetensorsChunks,
  safetensorsDTypeName,
} from '../io/safetensors/index.js';
import { modelFromProto, sourceProto } from '../graph/from-onnx.js';
import type { Initializer, Model } from '../graph/model.js';
import { fileSource, writeFileAtomic } from '../node/files.js';
import { openOnnxFile } from '../node/model-file.js';
import { dataFileName, writeOnnxModel, type DataFileNaming } from '../node/model-writer.js';
import type { Verification } from '../node/verify-model.js';
import { verifyOutput, type VerifyOption } from './verify-output.js';
import { skeletonOf } from './model-output.js';

/** Moved to model-output.ts (browser-safe); re-exported for existing importers. */
export { skeletonOf };

/*
 * `quantkit convert`: moves weights between containers without touching their bytes.
 *   ONNX → ONNX          inline ↔ external data, relocation, data file renaming; the graph as is
 *   ONNX → safetensors   the initializers and the weights held in Constant nodes (not shape constants)
 *   safetensors → safetensors
 * Every path streams: one tensor is read, written and dropped at a time.
 */

export type ContainerFormat = 'onnx' | 'safetensors';

export interface ConvertOptions extends VerifyOption {
  /** Put tensors of `threshold` bytes or more in a data file beside the output (ONNX output). */
  readonly externalData?: boolean;
  readonly threshold?: number;
  readonly dataNaming?: DataFileNaming;
  readonly force?: boolean;
}

export interface ConvertResult {
  readonly from: ContainerFormat;
  readonly to: ContainerFormat;
  readonly tensors: number;
  readonly externalTensors: number;
  readonly dataPath: string | undefined;
  /** Tensors left out (e.g. string tensors have no safetensors dtype). */
  readonly skipped: string[];
  /** ONNX → safetensors: Constant-node values left out as not parameters (see isCheckpointTensor). */
  readonly constantsLeftOut?: number;
  /** ONNX outputs: the written model loaded and run in ONNX Runtime (or why not). */
  readonly verification?: Verification | undefined;
}

/**
 * What a safetensors checkpoint of an ONNX model holds: its initializers, and the Constant-node
 * values that are weights or buffers (exporters such as paddle2onnx keep every weight in Constant
 * nodes) — float and bool tensors of rank 1 or more. Integer and scalar Constants are shapes, axes
 * and op constants (eps, a -inf mask value): graph plumbing, not parameters.
 */
function isCheckpointTensor(init: Initializer): boolean {
  if (init.source) return true; // a real initializer of the file
  const kind = dtypeInfo(init.dtype).kind;
  return kind !== 'int' && kind !== 'uint' && init.dims.length >= 1;
}

export function formatOf(path: string): ContainerFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.onnx') return 'onnx';
  if (ext === '.safetensors') return 'safetensors';
  throw new QuantkitError(
    'QK_CONVERT_UNKNOWN_FORMAT',
    `cannot tell the format of ${path} from its extension '${ext}'`,
    'name files .onnx or .safetensors',
  );
}

/** The files an ONNX model reads: itself and every external data file it names. */
function onnxInputs(path: string, proto: ModelProto): string[] {
  const files = new Set([resolve(path)]);
  for (const p of proto.graph?.initializer ?? []) {
    if (p.dataLocation === TensorProto_DataLocation.EXTERNAL)
      files.add(join(dirname(resolve(path)), parseExternalDataRef(p).location));
  }
  return [...files];
}

/**
 * The initializers of an IR model as tensors to write: unchanged ones keep their TensorProto
 * (exact bytes, external data re-read lazily), ones a pass made are encoded when written.
 */
export function tensorsToWriteOf(model: Model, external?: (p: TensorProto) => Uint8Array): TensorToWrite[] {
  return [...model.graph.initializers.values()].map((init) =>
    sourceProto(init)
      ? tensorFromProtoToWrite(sourceProto(init) as TensorProto, init.dtype, external)
      : tensorToWrite(init.name, init.dtype, init.dims, () => init.load()),
  );
}

export async function convertFile(input: string, output: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const from = formatOf(input);
  const to = formatOf(output);
  const force = opts.force ?? false;
  if (from === 'safetensors' && to === 'onnx') {
    throw new QuantkitError(
      'QK_CONVERT_UNSUPPORTED',
      `cannot convert ${input} (safetensors) to ONNX: a checkpoint has no graph`,
      'export the model to ONNX from its framework; convert works ONNX→ONNX, ONNX→safetensors and safetensors→safetensors',
    );
  }
  if (opts.externalData && to !== 'onnx') {
    throw new OptionError(
      'QK_BAD_OPTION',
      '`externalData` applies to ONNX outputs only',
      `drop \`externalData\`, or write ${output} as .onnx`,
      ['externalData'],
    );
  }

  if (from === 'safetensors') {
    const src = fileSource(input);
    try {
      const header = readSafetensorsHeader(src);
      const entries = header.tensors;
      // An absent __metadata__ stays absent (an empty one would change the header bytes).
      const metadata = Object.keys(header.metadata).length > 0 ? header.metadata : undefined;
      await writeFileAtomic(
        output,
        safetensorsChunks(entries, (i) => readSafetensorsTensor(src, entries[i] as (typeof entries)[number]), metadata),
        { force, inputs: [input] },
      );
      return { from, to, tensors: entries.length, externalTensors: 0, dataPath: undefined, skipped: [] };
    } finally {
      src.close();
    }
  }

  const file = openOnnxFile(input);
  try {
    const inputs = onnxInputs(input, file.proto);
    if (to === 'safetensors') {
      const model = modelFromProto(file.proto, { external: file.external, label: input });
      const all = [...model.graph.initializers.values()];
      const inits = all.filter(isCheckpointTensor);
      const kept = inits.filter((t) => safetensorsDTypeName(t.dtype) !== undefined);
      const skipped = inits.filter((t) => safetensorsDTypeName(t.dtype) === undefined).map((t) => t.name);
      const entries = kept.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims }));
      await writeFileAtomic(
        output,
        safetensorsChunks(entries, (i) => (kept[i] as (typeof kept)[number]).load()),
        { force, inputs },
      );
      return {
        from,
        to,
        tensors: kept.length,
        externalTensors: 0,
        dataPath: undefined,
        skipped,
        constantsLeftOut: all.length - inits.length,
      };
    }
    const g = file.proto.graph;
    if (!g) throw new QuantkitError('QK_MODEL_NO_GRAPH', `${input} has no graph`, 'is this an ONNX model file?');
    const tensors = g.initializer.map((p) =>
      tensorFromProtoToWrite(p, dtypeFromOnnx(p.dataType, `initializer '${p.name}'`), file.external),
    );
    const dataLocation = dataFileName(output, opts.dataNaming);
    const plan = planOnnxWrite(file.proto, tensors, {
      externalData: opts.externalData ? true : 'auto',
      ...(opts.threshold === undefined ? {} : { threshold: opts.threshold }),
      dataLocation,
    });
    const written = await writeOnnxModel(output, plan, { force, inputs });
    const verification = await verifyOutput(written, 'convert', { verify: opts.verify });
    return {
      from,
      to,
      tensors: tensors.length,
      externalTensors: plan.tensors.filter((t) => t.offset !== undefined).length,
      dataPath: written.dataPath,
      skipped: [],
      verification,
    };
  } finally {
    file.close();
  }
}

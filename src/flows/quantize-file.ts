import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { modelFromProto, sourceProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { parseExternalDataRef } from '../io/onnx/external.js';
import { TensorProto_DataLocation, type ModelProto, type TensorProto } from '../io/onnx/proto.js';
import { planOnnxWrite, tensorFromProtoToWrite, tensorToWrite, type TensorToWrite } from '../io/onnx/write.js';
import { readCalibFiles } from '../node/calib-files.js';
import { modelDirFiles } from '../node/files.js';
import { openOnnxFile } from '../node/model-file.js';
import { dataFileName, writeOnnxModel } from '../node/model-writer.js';
import type { Verification } from '../node/verify-model.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { resolveNonFinite, type NonFinitePolicy } from '../passes/non-finite.js';
import type { WeightOnlyOptions, WeightOnlyReport } from '../passes/weight-only/index.js';
import type { PrecomputedWeights } from '../passes/weight-only/types.js';
import { dtypeInfo, storageBytes } from '../tensor/dtype.js';
import { elementCount, type Tensor } from '../tensor/tensor.js';
import { skeletonOf } from './convert.js';
import { checkExcludes } from './exclude-check.js';
import { gptqFromCalibFiles, type GptqFileOptions } from './gptq.js';
import { awqFromCalibFiles, type AwqFileOptions } from './awq-node.js';
import { quantizeFolded } from './quantize.js';
import { precomputeWeights, type PoolOptions } from './quantize-pool.js';
import { firstSamples, verifyOutput, type VerifyOption } from './verify-output.js';

/*
 * Weight-only quantization file to file (the CLI path): streaming reads, worker threads for big
 * models, GPTQ from .npy calibration files, the output written tensor by tensor and checked in
 * ONNX Runtime. The rewrite itself is quantize.ts's, in memory.
 */

export interface QuantizeFileOptions extends WeightOnlyOptions, GptqFileOptions, AwqFileOptions, VerifyOption {
  readonly force?: boolean | undefined;
  /** NaN/±Inf in the weights: refuse (default), clamp, or keep them unquantized (passes/non-finite.ts). */
  readonly nonFinite?: NonFinitePolicy | undefined;
  /**
   * Output weights (bytes) from which the result goes to an external data file even when the
   * input was self-contained (default 1 GiB: well inside protobuf's 2 GiB, and ORT maps big
   * external files instead of parsing them). An input with external data always gets one.
   */
  readonly externalThreshold?: number | undefined;
  /** Worker threads for big models (quantize-pool.ts); `{ threads: 1 }` keeps to the main thread. */
  readonly pool?: PoolOptions | undefined;
}

export interface QuantizeFileResult {
  readonly report: WeightOnlyReport;
  /** The .onnx plus its external data files. */
  readonly inputFileBytes: number;
  /** The .onnx plus its data file, when one was written. */
  readonly outputFileBytes: number;
  /** The data file written beside the output, if any. */
  readonly dataPath: string | undefined;
  /** Weights quantized on worker threads (0: all on the main thread, as for small models). */
  readonly workerResults: number;
  /** The written model loaded and run in ONNX Runtime (or why not). */
  readonly verification: Verification;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
export const DEFAULT_EXTERNAL_OUTPUT_BYTES = 2 ** 30;

/** Initializers to write: unchanged ones copied from the input; new ones as raw views, no re-encoding. */
function tensorsToWrite(model: Model, external: (p: TensorProto) => Uint8Array): TensorToWrite[] {
  return [...model.graph.initializers.values()].map((init): TensorToWrite => {
    const source = sourceProto(init);
    if (source) return tensorFromProtoToWrite(source, init.dtype, external);
    const { bits, kind } = dtypeInfo(init.dtype);
    if (!LITTLE_ENDIAN_HOST || bits < 8 || kind === 'string' || kind === 'bool')
      return tensorToWrite(init.name, init.dtype, init.dims, () => init.load());
    return {
      name: init.name,
      dtype: init.dtype,
      dims: init.dims,
      // Byte-wide and wider element types: the typed array's bytes ARE raw_data (little-endian).
      rawBytes: () => {
        const d = init.load().data as Exclude<Tensor['data'], string[]>;
        return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      },
    };
  });
}

/** The files a model reads: itself and each distinct external data file. */
function inputFiles(path: string, proto: ModelProto): string[] {
  const files = new Set([resolve(path)]);
  for (const p of proto.graph?.initializer ?? []) {
    if (p.dataLocation === TensorProto_DataLocation.EXTERNAL)
      files.add(join(dirname(resolve(path)), parseExternalDataRef(p).location));
  }
  return [...files];
}

/**
 * File to file, streaming: weights are read one at a time through the lazy loader, quantized and
 * dropped (only the narrow results stay), then the output is written tensor by tensor — with an
 * external data file when the input had one or the weights are big — by node/model-writer.
 */
export async function quantizeFile(
  inPath: string,
  outPath: string,
  options: QuantizeFileOptions,
): Promise<QuantizeFileResult> {
  const file = openOnnxFile(inPath);
  try {
    const inputs = inputFiles(inPath, file.proto);
    const hadExternal = inputs.length > 1;
    // Weights load lazily; an fp32 external one as a view of the bytes just read (io/onnx/tensor.ts).
    const model = modelFromProto(file.proto, { external: file.external, label: inPath });
    checkExcludes(model, options.exclude, true);
    // NaN/±Inf weights: refused, clamped or kept out of quantization, one rule for every scheme.
    const nonFinite = resolveNonFinite(model, options.nonFinite ?? 'error');
    options = { ...options, exclude: [...(options.exclude ?? []), ...nonFinite.exclude] };
    const folded = foldBatchNorm(model);
    // --awq: the weights scaled and clipped first (flows/awq.ts); the norms are equalized then.
    const awq = await awqFromCalibFiles(model, options);
    if (awq) options = { ...options, equalizeNorms: false };
    // --calib: GPTQ's results (flows/gptq.ts) instead of the data-free ones (after AWQ: --awq-gptq).
    const gptq = awq && !options.awqGptq ? undefined : await gptqFromCalibFiles(model, options);
    // Big models: the weights are quantized on worker threads first (each reading its own bytes
    // from the data file), the pass then takes their results instead of loading the weights.
    const files = modelDirFiles(inPath);
    let precomputed: PrecomputedWeights | undefined;
    try {
      precomputed = gptq?.precomputed ?? (await precomputeWeights(model, options, files, options.pool));
    } finally {
      files.close();
    }
    const { report } = quantizeFolded(model, folded, { ...options, precomputed });
    if (gptq) report.notes.push(...gptq.notes);
    if (awq) report.notes.push(...awq.notes);
    report.notes.push(...nonFinite.notes);
    const tensors = tensorsToWrite(model, file.external);
    const bytesOut = tensors.reduce((sum, t) => sum + storageBytes(t.dtype, elementCount(t.dims)), 0);
    const external = hadExternal || bytesOut >= (options.externalThreshold ?? DEFAULT_EXTERNAL_OUTPUT_BYTES);
    const plan = planOnnxWrite(skeletonOf(model), tensors, {
      externalData: external ? true : 'auto',
      dataLocation: dataFileName(outPath),
    });
    const written = await writeOnnxModel(outPath, plan, { force: options.force ?? false, inputs });
    const inputFileBytes = inputs.reduce((sum, f) => sum + statSync(f).size, 0);
    const outputFileBytes = statSync(written.modelPath).size + written.dataBytes;
    const workerResults =
      precomputed && !gptq ? precomputed.nbits.size + precomputed.int8.size + (precomputed.bnb4?.size ?? 0) : 0;
    // GPTQ's calibration inputs (read again: only the first samples are needed, after the write).
    const samples =
      options.calib?.length && options.verify !== false
        ? firstSamples(
            readCalibFiles(
              options.calib,
              model.graph.inputs.map((v) => v.name),
            ),
            model.graph.inputs,
          )
        : undefined;
    const verification = await verifyOutput(written, `quantize \`scheme\` ${options.scheme}`, {
      verify: options.verify,
      samples,
    });
    return { report, inputFileBytes, outputFileBytes, dataPath: written.dataPath, workerResults, verification };
  } finally {
    file.close();
  }
}

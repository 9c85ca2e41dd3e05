import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { modelFromProto } from '../graph/from-onnx.js';
import { parseExternalDataRef } from '../io/onnx/external.js';
import { TensorProto_DataLocation, type ModelProto } from '../io/onnx/proto.js';
import { readCalibFiles } from '../node/calib-files.js';
import { modelDirFiles } from '../node/files.js';
import { openOnnxFile } from '../node/model-file.js';
import { dataFileName, writeOnnxModel } from '../node/model-writer.js';
import type { Verification } from '../node/verify-model.js';
import type { NonFinitePolicy } from '../passes/non-finite.js';
import type { WeightOnlyOptions, WeightOnlyReport } from '../passes/weight-only/index.js';
import type { PrecomputedWeights } from '../passes/weight-only/types.js';
import { planQuantizedOutput } from './model-output.js';
import { accuracyLevelCost } from './accuracy-level-node.js';
import { awqFromCalibFiles, type AwqFileOptions } from './awq-node.js';
import { gptqFromCalibFiles, type GptqFileOptions } from './gptq.js';
import { quantizeLoadedModel } from './quantize.js';
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

export { DEFAULT_EXTERNAL_OUTPUT_BYTES } from './model-output.js';

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
    let gptq: Awaited<ReturnType<typeof gptqFromCalibFiles>>;
    let precomputed: PrecomputedWeights | undefined;
    const report = await quantizeLoadedModel(model, options, async (folded, given) => {
      // --awq: the weights scaled and clipped first (flows/awq.ts); the norms are equalized then.
      const awq = await awqFromCalibFiles(folded, given);
      const overrides = awq ? { equalizeNorms: false } : undefined;
      const opts = { ...given, ...overrides };
      // --calib: GPTQ's results (flows/gptq.ts) instead of the data-free ones (after AWQ: --awq-gptq).
      gptq = awq && !opts.awqGptq ? undefined : await gptqFromCalibFiles(folded, opts);
      // Big models: the weights are quantized on worker threads first (each reading its own bytes
      // from the data file), the pass then takes their results instead of loading the weights.
      const files = modelDirFiles(inPath);
      try {
        precomputed = gptq?.precomputed ?? (await precomputeWeights(folded, opts, files, opts.pool));
      } finally {
        files.close();
      }
      return { precomputed, notes: [...(gptq?.notes ?? []), ...(awq?.notes ?? [])], overrides };
    });
    const plan = planQuantizedOutput(model, file.external, {
      hadExternal,
      externalThreshold: options.externalThreshold,
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
    // accuracy_level > 0 trades exactness for speed: the report says what it cost here, measured.
    if (verification.status === 'verified' && (options.accuracyLevel ?? 0) !== 0) {
      const cost = await accuracyLevelCost(written.modelPath, samples);
      if (cost)
        report.notes.push(
          `\`accuracyLevel\` ${options.accuracyLevel} measured in ONNX Runtime on the ${cost.input === 'sample' ? 'first calibration sample' : 'zero input'}: outputs within ${cost.relativeError.toExponential(1)} of level 0's (max |Δ| / max |output|)`,
        );
    }
    return { report, inputFileBytes, outputFileBytes, dataPath: written.dataPath, workerResults, verification };
  } finally {
    file.close();
  }
}

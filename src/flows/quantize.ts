import { statSync } from 'node:fs';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { removeDeadNodes } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { openOnnxFile } from '../node/model-file.js';
import { writeFileAtomic } from '../node/files.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { quantizeWeights, type WeightOnlyOptions, type WeightOnlyReport } from '../passes/weight-only/index.js';

/**
 * Weight-only quantization of a model: BatchNormalization folded into the preceding Conv/Gemm
 * first (so the folded weights are what gets quantized), then the scheme's rewrite, dead values
 * dropped. In memory on a Model (the library path) or file to file (the CLI path).
 */

export interface QuantizeResult {
  readonly model: Model;
  readonly report: WeightOnlyReport;
}

export function quantizeModel(model: Model, options: WeightOnlyOptions): QuantizeResult {
  const folded = foldBatchNorm(model);
  const report = quantizeWeights(model, options);
  removeDeadNodes(model.graph);
  if (folded > 0) report.notes.unshift(`${folded} BatchNormalization node${folded === 1 ? '' : 's'} folded into the preceding Conv/Gemm`);
  return { model, report };
}

/** Bytes of a model quantized in memory (for tests and the web page). */
export function quantizeModelBytes(bytes: Uint8Array, options: WeightOnlyOptions, label = '<model>'): { bytes: Uint8Array; report: WeightOnlyReport } {
  const model = modelFromProto(decodeModel(bytes, label), { label });
  const r = quantizeModel(model, options);
  return { bytes: encodeModel(modelToProto(r.model)), report: r.report };
}

export interface QuantizeFileOptions extends WeightOnlyOptions {
  readonly force?: boolean | undefined;
}

export interface QuantizeFileResult {
  readonly report: WeightOnlyReport;
  readonly inputFileBytes: number;
  readonly outputFileBytes: number;
}

export async function quantizeFile(inPath: string, outPath: string, options: QuantizeFileOptions): Promise<QuantizeFileResult> {
  const file = openOnnxFile(inPath);
  try {
    const model = modelFromProto(file.proto, { external: file.external, label: inPath });
    const { report } = quantizeModel(model, options);
    const bytes = encodeModel(modelToProto(model));
    await writeFileAtomic(outPath, [bytes], { force: options.force ?? false, inputs: [inPath] });
    return { report, inputFileBytes: statSync(inPath).size, outputFileBytes: bytes.length };
  } finally {
    file.close();
  }
}

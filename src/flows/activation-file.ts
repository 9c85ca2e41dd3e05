import { statSync } from 'node:fs';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { encodeModel } from '../io/onnx/proto.js';
import { readCalibFiles } from '../node/calib-files.js';
import { writeFileAtomic } from '../node/files.js';
import { openOnnxFile } from '../node/model-file.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import type { Verification } from '../node/verify-model.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ActivationReport } from './calibrate.js';
import { quantizeActivationModel, type ActivationQuantizeOptions } from './activation-quantize.js';
import { firstSamples, verifyOutput, type VerifyOption } from './verify-output.js';

/*
 * The int8-dynamic / int8-static schemes of `quantkit quantize`, file to file: the model read,
 * its calibration arrays read from .npy files, the in-memory rewrite (calibrate.ts) on
 * onnxruntime-node, the output written atomically and checked in ONNX Runtime.
 */

export interface ActivationFileOptions extends ActivationQuantizeOptions, VerifyOption {
  /** `--calib [name=]x.npy`, as given (int8-static). */
  readonly calib?: readonly string[] | undefined;
  readonly force?: boolean | undefined;
}

/** Quantizes a model file with int8-dynamic or int8-static; writes the output atomically. */
export async function quantizeActivationFile(
  inPath: string,
  outPath: string,
  o: ActivationFileOptions,
): Promise<{ report: ActivationReport; inputFileBytes: number; outputFileBytes: number; verification: Verification }> {
  const file = openOnnxFile(inPath);
  let report: ActivationReport;
  let bytes: Uint8Array;
  let samples: Map<string, Tensor> | undefined;
  try {
    const model = modelFromProto(file.proto, { external: file.external, label: inPath });
    const r = await quantizeActivationModel(
      nodeRuntime,
      model,
      o.calib?.length
        ? () =>
            readCalibFiles(
              o.calib ?? [],
              model.graph.inputs.map((v) => v.name),
            )
        : undefined,
      o,
    );
    report = r.report;
    if (o.scheme !== 'int8-dynamic') samples = firstSamples(r.data, model.graph.inputs);
    bytes = encodeModel(modelToProto(model));
  } finally {
    file.close();
  }
  await writeFileAtomic(outPath, [bytes], { force: o.force ?? false, inputs: [inPath] });
  const verification = await verifyOutput({ modelPath: outPath }, `quantize \`scheme\` ${o.scheme}`, {
    verify: o.verify,
    samples,
  });
  return { report, inputFileBytes: statSync(inPath).size, outputFileBytes: bytes.length, verification };
}

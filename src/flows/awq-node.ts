import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import type { WeightOnlyOptions, WeightOnlyReport } from '../passes/weight-only/types.js';
import { applyAwq, type AwqOptions, type AwqResult } from './awq.js';
import type { CalibrationData } from './calibrate.js';
import { quantizeModelGptq, type GptqFlowOptions } from './gptq.js';
import { quantizeFolded } from './quantize.js';
import type { Model } from '../graph/model.js';
import { OptionError } from '../errors.js';
import { readCalibFiles } from '../node/calib-files.js';
import { checkedCalibration } from './input-check.js';

/*
 * AWQ (flows/awq.ts) on onnxruntime-node, then the scheme's quantizer or GPTQ on the scaled
 * weights (`gptq`): the in-memory path of `quantize --awq --calib` (tests, measurements).
 */

export interface AwqRunOptions extends AwqOptions {
  /** GPTQ on the AWQ-scaled model instead of the data-free quantizer. */
  readonly gptq?: boolean | GptqFlowOptions | undefined;
}

export async function quantizeModelBytesAwq(
  bytes: Uint8Array,
  options: WeightOnlyOptions,
  data: CalibrationData,
  o: AwqRunOptions = {},
  label = '<model>',
): Promise<{ bytes: Uint8Array; report: WeightOnlyReport; awq: AwqResult }> {
  const model = modelFromProto(decodeModel(bytes, label), { label });
  const folded = foldBatchNorm(model);
  const awq = await applyAwq(nodeRuntime, model, options, data, o);
  const after = { ...options, equalizeNorms: false };
  const report = o.gptq
    ? (await quantizeModelGptq(model, after, data, o.gptq === true ? {} : o.gptq)).report
    : quantizeFolded(model, folded, after).report;
  report.notes.push(...awq.notes);
  return { bytes: encodeModel(modelToProto(model)), report, awq };
}

/** What `quantkit quantize --awq` adds to the file options (flows/quantize-file.ts). */
export interface AwqFileOptions {
  /** AWQ from the `calib` files before quantizing (options: its search). */
  readonly awq?: boolean | AwqOptions | undefined;
  /** With `awq`: GPTQ on the scaled weights instead of the data-free quantizer. */
  readonly awqGptq?: boolean | undefined;
}

/** AWQ on `model` in place from the `calib` files (undefined when not asked for). */
export async function awqFromCalibFiles(
  model: Model,
  options: WeightOnlyOptions & AwqFileOptions & { readonly calib?: readonly string[] | undefined },
): Promise<AwqResult | undefined> {
  if (!options.awq) {
    if (options.awqGptq)
      throw new OptionError('QK_BAD_OPTION', '`awqGptq` without `awq`', 'add `awq`, or drop `awqGptq`', [
        'awqGptq',
        'awq',
      ]);
    return undefined;
  }
  if (!options.calib?.length)
    throw new OptionError(
      'QK_CALIB_MISSING',
      '`awq` needs calibration data: its scales come from the layer inputs',
      'pass `calib` [name=]x.npy (a few hundred representative samples)',
      ['awq', 'calib'],
    );
  const calib = checkedCalibration(
    model,
    readCalibFiles(
      options.calib,
      model.graph.inputs.map((v) => v.name),
    ),
    undefined,
  );
  const r = await applyAwq(nodeRuntime, model, options, calib.data, options.awq === true ? {} : options.awq);
  return { ...r, notes: [...calib.notes, ...r.notes] };
}

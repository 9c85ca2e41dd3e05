import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { removeDeadNodes } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { opsetRaiseNote, settleOpset } from '../passes/opset-floor.js';
import type { WeightOnlyOptions, WeightOnlyReport } from '../passes/weight-only/index.js';
import { WEIGHT_ONLY_HANDLERS } from './scheme-handlers.js';
import { SCHEME_TABLE } from './schemes.js';

/**
 * Weight-only quantization of a model: BatchNormalization folded into the preceding Conv/Gemm
 * first (so the folded weights are what gets quantized), then the scheme's rewrite, dead values
 * dropped. In memory on a Model or its bytes; file to file in quantize-file.ts.
 */

export interface QuantizeResult {
  readonly model: Model;
  readonly report: WeightOnlyReport;
}

export function quantizeModel(model: Model, options: WeightOnlyOptions): QuantizeResult {
  return quantizeFolded(model, foldBatchNorm(model), options);
}

/** The rewrite after BN folding (`folded` nodes were folded): the scheme table's handler. */
export function quantizeFolded(model: Model, folded: number, options: WeightOnlyOptions): QuantizeResult {
  const report = WEIGHT_ONLY_HANDLERS[SCHEME_TABLE[options.scheme].handler](model, options);
  removeDeadNodes(model.graph);
  // The handlers raise the opset for the forms they write; this catches any that did not.
  const raised = settleOpset(model);
  if (raised) report.notes.push(opsetRaiseNote(raised));
  if (folded > 0)
    report.notes.unshift(
      `${folded} BatchNormalization node${folded === 1 ? '' : 's'} folded into the preceding Conv/Gemm`,
    );
  return { model, report };
}

/** Bytes of a model quantized in memory (for tests and the web page). */
export function quantizeModelBytes(
  bytes: Uint8Array,
  options: WeightOnlyOptions,
  label = '<model>',
): { bytes: Uint8Array; report: WeightOnlyReport } {
  const model = modelFromProto(decodeModel(bytes, label), { label });
  const r = quantizeModel(model, options);
  return { bytes: encodeModel(modelToProto(r.model)), report: r.report };
}

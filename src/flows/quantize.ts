import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { removeDeadNodes } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { resolveNonFinite, type NonFinitePolicy } from '../passes/non-finite.js';
import { opsetRaiseNote, settleOpset } from '../passes/opset-floor.js';
import type { WeightOnlyOptions, WeightOnlyReport } from '../passes/weight-only/index.js';
import type { PrecomputedWeights } from '../passes/weight-only/types.js';
import { checkExcludes } from './exclude-check.js';
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

export interface LoadedModelOptions extends WeightOnlyOptions {
  /** NaN/±Inf in the weights: refuse (default), clamp, or keep them unquantized (passes/non-finite.ts). */
  readonly nonFinite?: NonFinitePolicy | undefined;
}

/** Results computed ahead of the pass (GPTQ, worker threads) and the notes they bring. */
export interface Precomputation {
  readonly precomputed: PrecomputedWeights | undefined;
  readonly notes: readonly string[];
  /** Options the pass takes instead of the caller's (AWQ: the norms were equalized already). */
  readonly overrides?: Partial<WeightOnlyOptions> | undefined;
}

/**
 * `quantkit quantize`'s weight-only steps on a loaded model, whatever it was read from (files in
 * quantize-file.ts, bytes or Blobs in web/api.ts, so both write the same bytes): the excludes
 * checked, NaN/±Inf weights resolved by one rule for every scheme, BatchNorm folded, then the
 * caller's `precompute` (GPTQ, worker threads), then the pass.
 */
export async function quantizeLoadedModel<O extends LoadedModelOptions>(
  model: Model,
  options: O,
  precompute?: (model: Model, options: O) => Promise<Precomputation | undefined>,
): Promise<WeightOnlyReport> {
  checkExcludes(model, options.exclude, true);
  const nonFinite = resolveNonFinite(model, options.nonFinite ?? 'error');
  const opts: O = { ...options, exclude: [...(options.exclude ?? []), ...nonFinite.exclude] };
  const folded = foldBatchNorm(model);
  const pre = await precompute?.(model, opts);
  const { report } = quantizeFolded(model, folded, { ...opts, ...pre?.overrides, precomputed: pre?.precomputed });
  report.notes.push(...(pre?.notes ?? []), ...nonFinite.notes);
  return report;
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

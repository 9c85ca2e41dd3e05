import { parseCalibMethod, type CalibMethod } from '../calib/method.js';
import type { Model } from '../graph/model.js';
import type { Target } from '../passes/activation/weight-form.js';
import {
  convertWeightsToFloat16,
  quantizeWeights,
  type WeightOnlyOptions,
  type WeightOnlyReport,
} from '../passes/weight-only/index.js';
import {
  quantizeDynamicModel,
  quantizeStatic,
  type ActivationReport,
  type CalibrationData,
  type CalibrationProgress,
  type StaticScheme,
} from './calibrate.js';
import type { OnnxRuntime } from './runtime.js';
import type { WeightBits } from '../passes/activation/qdq.js';
import type { ActivationHandlerKind, WeightOnlyHandlerKind } from './schemes.js';

/*
 * The handler of each kind the scheme table (schemes.ts) names, in memory. `satisfies Record<…>`
 * makes a kind without a handler a compile error.
 */

export type WeightOnlyHandler = (model: Model, options: WeightOnlyOptions) => WeightOnlyReport;

export const WEIGHT_ONLY_HANDLERS = {
  weights: quantizeWeights,
  fp16: convertWeightsToFloat16,
} as const satisfies Record<WeightOnlyHandlerKind, WeightOnlyHandler>;

export interface ActivationJobOptions {
  readonly exclude?: readonly string[] | undefined;
  readonly keepFirstLast?: boolean | undefined;
  /** The CPU the model runs on, which picks the weight form (passes/activation/weight-form.ts). */
  readonly target?: Target | undefined;
  /** int8-dynamic: graph form and per-token activation scales. */
  readonly dynamicForm?: 'integer' | 'contrib' | undefined;
  readonly perToken?: boolean | undefined;
  /** int8-static: range method (default minmax), samples per run, progress, SmoothQuant α, activation type. */
  readonly method?: CalibMethod | undefined;
  readonly batchSize?: number | undefined;
  readonly progress?: CalibrationProgress | undefined;
  readonly smoothQuant?: number | undefined;
  readonly activationType?: 'uint8' | 'int8' | undefined;
  readonly minConvReduction?: number | undefined;
}

/** Rewrites `model` in place; `data` are the calibration inputs (int8-dynamic reads none). */
export type ActivationHandler = (
  runtime: OnnxRuntime,
  model: Model,
  data: CalibrationData,
  o: ActivationJobOptions,
) => Promise<ActivationReport>;

function staticHandler(scheme: StaticScheme, weightBits: WeightBits): ActivationHandler {
  return async (runtime, model, data, o) => ({
    scheme,
    ...(
      await quantizeStatic(runtime, model, data, {
        method: o.method ?? parseCalibMethod('minmax'),
        batchSize: o.batchSize,
        progress: o.progress,
        smoothQuant: o.smoothQuant,
        exclude: o.exclude,
        keepFirstLast: o.keepFirstLast,
        activationType: o.activationType,
        minConvReduction: o.minConvReduction,
        target: o.target,
        weightBits,
      })
    ).report,
  });
}

export const ACTIVATION_HANDLERS = {
  'int8-dynamic': async (_runtime, model, _data, o) => ({
    scheme: 'int8-dynamic',
    ...quantizeDynamicModel(model, {
      exclude: o.exclude,
      keepFirstLast: o.keepFirstLast,
      form: o.dynamicForm,
      perToken: o.perToken,
      target: o.target,
    }),
  }),
  'int8-static': staticHandler('int8-static', 8),
  // The int8-static form with 4-bit (3-bit) per-channel weights in int4 storage: QAT's PTQ baseline.
  'int4-static': staticHandler('int4-static', 4),
  'int3-static': staticHandler('int3-static', 3),
} as const satisfies Record<ActivationHandlerKind, ActivationHandler>;

import { OptionError } from '../errors.js';
import { parseCalibMethod } from '../calib/method.js';
import type { Model } from '../graph/model.js';
import type { Target } from '../passes/activation/weight-form.js';
import { resolveNonFinite, type NonFinitePolicy } from '../passes/non-finite.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ActivationReport, CalibrationData, CalibrationProgress } from './calibrate.js';
import { checkExcludes } from './exclude-check.js';
import { checkedCalibration } from './input-check.js';
import type { OnnxRuntime } from './runtime.js';
import { ACTIVATION_HANDLERS } from './scheme-handlers.js';
import { SCHEME_TABLE, type ActivationScheme } from './schemes.js';

/*
 * `quantkit quantize`'s int8-dynamic / int8-static steps on a loaded model, whatever it and its
 * calibration arrays were read from (files in activation-file.ts, bytes or Blobs in web/api.ts),
 * with the runtime passed in: the checks, NaN/±Inf weights, the calibration arrays, the rewrite.
 */

export interface ActivationQuantizeOptions {
  readonly scheme: ActivationScheme;
  /** `method` text: minmax | moving-average[:c] | percentile[:p] | entropy | mse. */
  readonly method?: string | undefined;
  readonly calibBatch?: number | undefined;
  /** SmoothQuant α; true = 0.5. */
  readonly smoothQuant?: boolean | number | undefined;
  /** 'uint8' (default) or 'int8' symmetric activations (int8-static). */
  readonly activationType?: 'uint8' | 'int8' | undefined;
  /** int8-static: convs with a shorter reduction stay fp32 (passes/activation/plan.ts). */
  readonly minConvReduction?: number | undefined;
  /** int8-dynamic graph form, and per-token activation scales. */
  readonly dynamicForm?: 'integer' | 'contrib' | undefined;
  readonly perToken?: boolean | undefined;
  /** The CPU the model runs on, which picks the weight form (passes/activation/weight-form.ts). */
  readonly target?: Target | undefined;
  readonly exclude?: readonly string[] | undefined;
  readonly keepFirstLast?: boolean | undefined;
  /** Called after every calibration batch (int8-static). */
  readonly progress?: CalibrationProgress | undefined;
  /** NaN/±Inf in the weights: refuse (default), clamp, or keep them unquantized (passes/non-finite.ts). */
  readonly nonFinite?: NonFinitePolicy | undefined;
}

/**
 * Rewrites `model` in place. `calib` reads the calibration arrays by input name (undefined: none
 * given); it is called only once the options are known to be right. Returns the report and the
 * checked calibration data (empty for int8-dynamic).
 */
export async function quantizeActivationModel(
  runtime: OnnxRuntime,
  model: Model,
  calib: (() => ReadonlyMap<string, Tensor>) | undefined,
  o: ActivationQuantizeOptions,
): Promise<{ report: ActivationReport; data: CalibrationData }> {
  checkExcludes(model, o.exclude, false);
  const nonFinite = resolveNonFinite(model, o.nonFinite ?? 'error');
  const exclude = [...(o.exclude ?? []), ...nonFinite.exclude];
  let data: CalibrationData = new Map();
  const calibNotes: string[] = [];
  if (o.scheme === 'int8-dynamic') {
    if (calib)
      throw new OptionError(
        'QK_BAD_OPTION',
        '`calib` is for int8-static; int8-dynamic finds activation scales at run time',
        'drop `calib` or use `scheme` int8-static',
        ['calib', 'scheme'],
      );
  } else {
    if (!calib)
      throw new OptionError(
        'QK_CALIB_MISSING',
        `${o.scheme} needs calibration data`,
        'pass `calib` [name=]x.npy (a few hundred representative samples)',
        ['calib'],
      );
    const checked = checkedCalibration(model, calib(), o.calibBatch);
    data = checked.data;
    calibNotes.push(...checked.notes);
  }
  const alpha = o.smoothQuant === true ? 0.5 : o.smoothQuant === false ? undefined : o.smoothQuant;
  if (o.scheme !== 'int8-dynamic' && alpha !== undefined && !(alpha >= 0 && alpha <= 1))
    throw new OptionError('QK_BAD_OPTION', `\`smoothQuant\` ${alpha} is outside [0, 1]`, 'use e.g. `smoothQuant` 0.5', [
      'smoothQuant',
    ]);
  const report = await ACTIVATION_HANDLERS[SCHEME_TABLE[o.scheme].handler](runtime, model, data, {
    // Parsed for the static schemes only: int8-dynamic never read `method`.
    method: o.scheme !== 'int8-dynamic' ? parseCalibMethod(o.method ?? 'minmax') : undefined,
    batchSize: o.calibBatch,
    progress: o.progress,
    smoothQuant: alpha,
    exclude,
    keepFirstLast: o.keepFirstLast,
    activationType: o.activationType,
    minConvReduction: o.minConvReduction,
    target: o.target,
    dynamicForm: o.dynamicForm,
    perToken: o.perToken,
  });
  report.notes.push(...calibNotes, ...nonFinite.notes);
  return { report, data };
}

import { statSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { encodeModel } from '../io/onnx/proto.js';
import { parseCalibMethod } from '../calib/method.js';
import { readCalibFiles } from '../node/calib-files.js';
import { writeFileAtomic } from '../node/files.js';
import { openOnnxFile } from '../node/model-file.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import type { Verification } from '../node/verify-model.js';
import type { Target } from '../passes/activation/weight-form.js';
import { resolveNonFinite, type NonFinitePolicy } from '../passes/non-finite.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ActivationReport, CalibrationData, CalibrationProgress } from './calibrate.js';
import { checkExcludes } from './exclude-check.js';
import { checkedCalibration } from './input-check.js';
import { ACTIVATION_HANDLERS } from './scheme-handlers.js';
import { SCHEME_TABLE, type ActivationScheme } from './schemes.js';
import { firstSamples, verifyOutput, type VerifyOption } from './verify-output.js';

/*
 * The int8-dynamic / int8-static schemes of `quantkit quantize`, file to file: the model read,
 * its calibration arrays read from .npy files, the in-memory rewrite (calibrate.ts) on
 * onnxruntime-node, the output written atomically and checked in ONNX Runtime.
 */

export interface ActivationFileOptions extends VerifyOption {
  readonly scheme: ActivationScheme;
  /** `--calib [name=]x.npy`, as given (int8-static). */
  readonly calib?: readonly string[] | undefined;
  /** `--method` text: minmax | moving-average[:c] | percentile[:p] | entropy | mse. */
  readonly method?: string | undefined;
  readonly calibBatch?: number | undefined;
  /** `--smoothquant [alpha]`: true = 0.5. */
  readonly smoothQuant?: boolean | number | undefined;
  /** 'uint8' (default) or 'int8' symmetric activations (int8-static). */
  readonly activationType?: 'uint8' | 'int8' | undefined;
  /** int8-dynamic graph form, and per-token activation scales. */
  readonly dynamicForm?: 'integer' | 'contrib' | undefined;
  readonly perToken?: boolean | undefined;
  /** `--target`: the CPU the model runs on, which picks the weight form (passes/activation/weight-form.ts). */
  readonly target?: Target | undefined;
  readonly exclude?: readonly string[] | undefined;
  readonly keepFirstLast?: boolean | undefined;
  readonly force?: boolean | undefined;
  /** Called after every calibration batch (int8-static). */
  readonly progress?: CalibrationProgress | undefined;
  /** NaN/±Inf in the weights: refuse (default), clamp, or keep them unquantized (passes/non-finite.ts). */
  readonly nonFinite?: NonFinitePolicy | undefined;
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
    checkExcludes(model, o.exclude, false);
    const nonFinite = resolveNonFinite(model, o.nonFinite ?? 'error');
    o = { ...o, exclude: [...(o.exclude ?? []), ...nonFinite.exclude] };
    let data: CalibrationData = new Map();
    const calibNotes: string[] = [];
    if (o.scheme === 'int8-dynamic') {
      if (o.calib?.length)
        throw new OptionError(
          'QK_BAD_OPTION',
          '`calib` is for int8-static; int8-dynamic finds activation scales at run time',
          'drop `calib` or use `scheme` int8-static',
          ['calib', 'scheme'],
        );
    } else {
      if (!o.calib?.length)
        throw new OptionError(
          'QK_CALIB_MISSING',
          `${o.scheme} needs calibration data`,
          'pass `calib` [name=]x.npy (a few hundred representative samples)',
          ['calib'],
        );
      const calib = checkedCalibration(
        model,
        readCalibFiles(
          o.calib,
          model.graph.inputs.map((v) => v.name),
        ),
        o.calibBatch,
      );
      data = calib.data;
      calibNotes.push(...calib.notes);
      samples = firstSamples(data, model.graph.inputs);
    }
    const alpha = o.smoothQuant === true ? 0.5 : o.smoothQuant === false ? undefined : o.smoothQuant;
    if (o.scheme !== 'int8-dynamic' && alpha !== undefined && !(alpha >= 0 && alpha <= 1))
      throw new OptionError(
        'QK_BAD_OPTION',
        `\`smoothQuant\` ${alpha} is outside [0, 1]`,
        'use e.g. `smoothQuant` 0.5',
        ['smoothQuant'],
      );
    report = await ACTIVATION_HANDLERS[SCHEME_TABLE[o.scheme].handler](nodeRuntime, model, data, {
      // Parsed for the static schemes only: int8-dynamic never read --method.
      method: o.scheme !== 'int8-dynamic' ? parseCalibMethod(o.method ?? 'minmax') : undefined,
      batchSize: o.calibBatch,
      progress: o.progress,
      smoothQuant: alpha,
      exclude: o.exclude,
      keepFirstLast: o.keepFirstLast,
      activationType: o.activationType,
      target: o.target,
      dynamicForm: o.dynamicForm,
      perToken: o.perToken,
    });
    report.notes.push(...calibNotes);
    report.notes.push(...nonFinite.notes);
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

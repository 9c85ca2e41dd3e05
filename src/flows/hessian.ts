import { OptionError, QuantkitError } from '../errors.js';
import type { Model } from '../graph/model.js';
import { accumulateGram, symmetrize } from '../quant/gptq.js';
import { augmentedModelBytes, runModelBatches, type CalibrationData, type CalibrationProgress } from './calibrate.js';
import type { OnnxRuntime, RuntimeTensor } from './runtime.js';

/*
 * GPTQ's layer statistics: for each linear layer input X (a float32 activation whose last axis is
 * the layer's K), H = XᵀX summed over every token of the calibration data. The activations come
 * from the calibration machinery (calibrate.ts: an augmented copy of the model that also outputs
 * them, run in ONNX Runtime batch by batch); only H is kept, K² float64 per activation, so memory
 * is bounded by one batch's activations plus the matrices, whatever the number of samples.
 */

export interface HessianOptions {
  readonly batchSize?: number | undefined;
  readonly progress?: CalibrationProgress | undefined;
  /** For the progress callback: this collection's number and the number of collections. */
  readonly pass?: number;
  readonly passes?: number;
  /** Also each input channel's mean |x| over the tokens (AWQ's activation scale). */
  readonly meanAbs?: boolean | undefined;
  /** The method named in errors ('GPTQ' by default). */
  readonly method?: string | undefined;
}

export interface LayerHessian {
  /** XᵀX [K, K], symmetric. */
  readonly h: Float64Array;
  /** Rows (tokens) summed. */
  readonly rows: number;
  /** Mean |x| per input channel [K], with `meanAbs`. */
  readonly meanAbs?: Float64Array | undefined;
}

function allFinite(d: Float32Array): boolean {
  for (let i = 0; i < d.length; i++) if ((d[i] as number) - (d[i] as number) !== 0) return false;
  return true;
}

/**
 * The calibration data are finite (input-check.ts) and the weights checked (gptq.ts), so NaN/Inf
 * here come from the model's arithmetic on this data: a float32 overflow.
 */
function nonFiniteActivation(name: string, method: string): QuantkitError {
  return new QuantkitError(
    'QK_CALIB_NON_FINITE',
    `layer input '${name}' holds NaN or ±Inf on the calibration data: the float32 model overflows on it`,
    `check the model on this data in ONNX Runtime; ${method} needs finite layer inputs`,
  );
}

/** abs[k] += Σ_rows |x[row, k]| for x [rows, K] row-major. */
function addAbs(abs: Float64Array, x: Float32Array, K: number): void {
  for (let i = 0; i < x.length; i++) abs[i % K] = (abs[i % K] as number) + Math.abs(x[i] as number);
}

/**
 * XᵀX of each activation (name → K, its last axis) of `model` over the calibration data, and with
 * `meanAbs` each channel's mean |x| from the same run.
 */
export async function collectHessians(
  runtime: OnnxRuntime,
  model: Model,
  activations: ReadonlyMap<string, number>,
  data: CalibrationData,
  opts: HessianOptions = {},
): Promise<Map<string, LayerHessian>> {
  const method = opts.method ?? 'GPTQ';
  const sums = new Map<string, { h: Float64Array; abs: Float64Array | undefined; rows: number; K: number }>();
  for (const [name, K] of activations)
    sums.set(name, { h: new Float64Array(K * K), abs: opts.meanAbs ? new Float64Array(K) : undefined, rows: 0, K });
  if (sums.size === 0) return new Map();
  const names = [...sums.keys()];
  await runModelBatches(
    runtime,
    augmentedModelBytes(model, names),
    data,
    names,
    (out: Record<string, RuntimeTensor>) => {
      for (const [name, s] of sums) {
        const t = out[name];
        if (!t || !(t.data instanceof Float32Array))
          throw new OptionError(
            'QK_CALIB_NOT_FLOAT',
            `layer input '${name}' is not float32 at run time`,
            `${method} reads float32 layer inputs; \`exclude\` the layer`,
            ['exclude'],
          );
        const last = t.dims[t.dims.length - 1];
        if (last !== s.K)
          throw new OptionError(
            'QK_GPTQ_SHAPE',
            `layer input '${name}' has last axis ${String(last)}, the weight it meets has K = ${s.K}`,
            '`exclude` the layer',
            ['exclude'],
          );
        const rows = t.data.length / s.K;
        if (!allFinite(t.data)) throw nonFiniteActivation(name, method);
        if (s.abs) addAbs(s.abs, t.data, s.K);
        accumulateGram(s.h, t.data, rows, s.K);
        s.rows += rows;
      }
    },
    { batchSize: opts.batchSize, progress: opts.progress, pass: opts.pass ?? 1, passes: opts.passes ?? 1 },
  );
  const result = new Map<string, LayerHessian>();
  for (const [name, s] of sums) {
    symmetrize(s.h, s.K);
    const meanAbs = s.abs?.map((v) => v / Math.max(1, s.rows));
    result.set(name, { h: s.h, rows: s.rows, meanAbs });
  }
  return result;
}

import { readFileSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { modelToProto } from '../graph/to-onnx.js';
import { readCalibFiles } from '../node/calib-files.js';
import { writeFileAtomic } from '../node/files.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import type { LayerReport } from '../passes/weight-only/types.js';
import { applyAwq } from './awq.js';
import type { CalibrationData } from './calibrate.js';
import { gptqPrecompute } from './gptq.js';
import { checkedCalibration } from './input-check.js';
import {
  AWQ_CANDIDATES,
  averageSensitivity,
  splitCalibration,
  type ScoringFold,
  DEFAULT_CANDIDATES,
  candidateOptions,
  measureSensitivity,
  mixedModelBytes,
  parseCandidate,
  planMixedForLoss,
  prepareMixed,
  refinePlan,
  type Candidate,
  type MixedHooks,
  type MixedPlan,
  type SensitivityResult,
} from './mixed.js';

/**
 * GPTQ (sequential, on the whole prepared model, per candidate) and, with `awq`, AWQ's activation
 * scales folded into the fp32 model first, searched for q4 at block 128 (the middle of the
 * candidates). AWQ's clipping search for that scheme is run on a second copy (the same scales, so
 * the same graph) whose shrunk weights the `+clip` candidates quantize; the others keep the
 * unclipped weights, which q8 and fp32 want.
 */
export function nodeMixedHooks(
  data: CalibrationData,
  o: { readonly awq?: boolean | undefined; readonly exclude?: readonly string[] | undefined } = {},
): MixedHooks {
  const awqOptions = { scheme: 'q4', blockSize: 128, exclude: o.exclude, equalizeNorms: false } as const;
  return {
    gptq: async (model, c) => (await gptqPrecompute(model, candidateOptions(c, o.exclude), data)).precomputed,
    rescale: o.awq
      ? async (model) => {
          const clipped = modelFromProto(decodeModel(encodeModel(modelToProto(model))));
          const notes = (await applyAwq(nodeRuntime, model, awqOptions, data, { maxShrink: 0 })).notes;
          await applyAwq(nodeRuntime, clipped, awqOptions, data);
          return { notes, clipped };
        }
      : undefined,
  };
}

export interface SensitivityFileOptions {
  readonly calib?: readonly string[] | undefined;
  /** Candidates as `scheme[:block]` (default DEFAULT_CANDIDATES). */
  readonly schemes?: readonly string[] | undefined;
  readonly exclude?: readonly string[] | undefined;
  /** AWQ's scales folded into the fp32 model before every candidate (flows/awq.ts). */
  readonly awq?: boolean | undefined;
  readonly progress?: ((done: number, total: number) => void) | undefined;
}

function load(
  path: string,
  o: SensitivityFileOptions,
): { bytes: Uint8Array; data: CalibrationData; candidates: Candidate[]; notes: string[] } {
  const bytes = readFileSync(path);
  if (!o.calib?.length)
    throw new OptionError(
      'QK_CALIB_MISSING',
      'sensitivity needs calibration data: each weight is scored by how much quantizing it alone changes the outputs',
      'pass `calib` [name=]x.npy',
      ['calib'],
    );
  const model = modelFromProto(decodeModel(bytes, path), { label: path });
  const calib = checkedCalibration(
    model,
    readCalibFiles(
      o.calib,
      model.graph.inputs.map((v) => v.name),
    ),
    undefined,
  );
  const candidates = (o.schemes?.length ? o.schemes : [...DEFAULT_CANDIDATES, ...(o.awq ? AWQ_CANDIDATES : [])]).map(
    parseCandidate,
  );
  return { bytes, data: calib.data, candidates, notes: calib.notes };
}

export async function sensitivityFile(
  path: string,
  o: SensitivityFileOptions,
): Promise<SensitivityResult & { candidates: Candidate[]; notes: string[] }> {
  const { bytes, data, candidates, notes } = load(path, o);
  const setup = await prepareMixed(bytes, candidates, { exclude: o.exclude }, nodeMixedHooks(data, o));
  const r = await measureSensitivity(nodeRuntime, bytes, data, candidates, { exclude: o.exclude }, o.progress, setup);
  return { ...r, candidates, notes: [...notes, ...setup.notes] };
}

export interface MixedFileOptions extends SensitivityFileOptions {
  /** Budget as bits per linear weight ... */
  readonly targetBits?: number | undefined;
  /** ... or as bytes of the linear weights ... */
  readonly targetSize?: number | undefined;
  /** ... or the smallest model whose predicted loss rises by at most this fraction (0.01 = 1 %). */
  readonly maxLossIncrease?: number | undefined;
  /**
   * Score the candidates on calibration samples their GPTQ/AWQ did not see: two halves, each fitted
   * on one and scored on the other (costs averaged); the written model is fitted on all samples.
   */
  readonly crossFit?: boolean | undefined;
  /** Rounds of re-measuring the costs on top of the plan (refinePlan; default 1, 0 = none). */
  readonly refineRounds?: number | undefined;
  readonly force?: boolean | undefined;
}

/** [fit, score] for two folds: each half fitted, the other scored. */
function pairs(halves: CalibrationData[]): [CalibrationData, CalibrationData][] {
  const [a, b] = halves as [CalibrationData, CalibrationData];
  return [
    [a, b],
    [b, a],
  ];
}

async function sequential<T, R>(items: readonly T[], f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const t of items) out.push(await f(t));
  return out;
}

export interface MixedFileResult {
  readonly plan: MixedPlan;
  readonly layers: LayerReport[];
  readonly sensitivity: SensitivityResult;
  readonly outputFileBytes: number;
  readonly notes: string[];
}

/** Sensitivity, the knapsack under the budget, and the mixed model written to `outPath`. */
export async function quantizeMixedFile(
  inPath: string,
  outPath: string,
  o: MixedFileOptions,
): Promise<MixedFileResult> {
  const given = [o.targetBits, o.targetSize, o.maxLossIncrease].filter((v) => v !== undefined).length;
  if (given !== 1)
    throw new OptionError(
      'QK_BAD_OPTION',
      'give one of `targetBits`, `targetSize` and `maxLossIncrease`',
      'e.g. `targetBits` 4.5',
      ['targetBits', 'targetSize', 'maxLossIncrease'],
    );
  const { bytes, data, candidates, notes } = load(inPath, o);
  const setup = await prepareMixed(bytes, candidates, { exclude: o.exclude }, nodeMixedHooks(data, o));
  notes.push(...setup.notes);
  // Cross-fitting: each half's GPTQ/AWQ scored on the other half; the written model is fitted on all.
  const folds: ScoringFold[] = [];
  if (o.crossFit)
    for (const [fit, score] of pairs(splitCalibration(data, 2)))
      folds.push({
        setup: await prepareMixed(bytes, candidates, { exclude: o.exclude }, nodeMixedHooks(fit, o)),
        data: score,
      });
  const s =
    folds.length > 0
      ? averageSensitivity(
          await sequential(folds, (f) =>
            measureSensitivity(nodeRuntime, bytes, f.data, candidates, { exclude: o.exclude }, o.progress, f.setup),
          ),
        )
      : await measureSensitivity(nodeRuntime, bytes, data, candidates, { exclude: o.exclude }, o.progress, setup);
  const params = s.weights.reduce((a, w) => a + w.params, 0);
  const plan =
    o.maxLossIncrease !== undefined
      ? planMixedForLoss(s, candidates, Math.log1p(o.maxLossIncrease))
      : await refinePlan(
          nodeRuntime,
          bytes,
          data,
          candidates,
          setup,
          s,
          o.targetSize ?? ((o.targetBits as number) * params) / 8,
          { rounds: o.refineRounds, folds: folds.length > 0 ? folds : undefined },
        );
  const budget =
    o.maxLossIncrease !== undefined ? plan.bytes : (o.targetSize ?? ((o.targetBits as number) * params) / 8);
  const m = mixedModelBytes(setup, plan);
  await writeFileAtomic(outPath, [m.bytes], { force: o.force ?? false, inputs: [inPath] });
  const allowed =
    o.maxLossIncrease !== undefined
      ? `summed KL ≤ ln(1 + ${o.maxLossIncrease}) = ${Math.log1p(o.maxLossIncrease).toExponential(3)}`
      : `${Math.floor(budget)} bytes allowed`;
  notes.push(
    `mixed precision: ${((plan.bytes * 8) / Math.max(1, plan.params)).toFixed(3)} bits per linear weight (${plan.bytes} bytes; ${allowed}), summed KL of the choices ${plan.predictedKl.toExponential(3)}${plan.measuredKl === undefined ? '' : `, joint KL ${plan.measuredKl.toExponential(3)} (${plan.source ?? ''})`}`,
  );
  return { plan, layers: m.layers, sensitivity: s, outputFileBytes: m.bytes.length, notes };
}

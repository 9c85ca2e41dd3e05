import { readFileSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { modelToProto } from '../graph/to-onnx.js';
import { readCalibFiles } from '../node/calib-files.js';
import { readNpy } from '../io/npy/npy.js';
import { writeFileAtomic } from '../node/files.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import type { SchemeName } from '../passes/weight-only/scheme.js';
import type { LayerReport } from '../passes/weight-only/types.js';
import { applyAwq, awqScheme } from './awq.js';
import { quantizeModelBytesAwq } from './awq-node.js';
import type { CalibrationData } from './calibrate.js';
import { gptqPrecompute, gptqPrecomputeGroups, quantizeModelBytesGptq } from './gptq.js';
import { checkedCalibration } from './input-check.js';
import {
  AWQ_CANDIDATES,
  averageSensitivity,
  splitCalibration,
  type ScoringFold,
  DEFAULT_CANDIDATES,
  candidateOptions,
  guardCandidates,
  klFromReference,
  measureSensitivity,
  pickGuarded,
  referenceOutputs,
  trueLinearBits,
  type GuardEntry,
  parseCandidate,
  planMixedForLoss,
  prepareMixed,
  refinePlan,
  writtenModelBytes,
  type Candidate,
  type MixedHooks,
  type MixedPlan,
  type SensitivityResult,
  type Objective,
  objectiveName,
  splitObjective,
} from './mixed.js';
import { checkLabelCount } from './task-loss.js';

/**
 * GPTQ (sequential, on the whole prepared model, per candidate; or once over a plan, each weight
 * in its candidate's scheme) and, with `awq`, AWQ's activation scales folded into the fp32 model
 * first, searched for q4 at block 128 (the middle of the candidates). AWQ's clipping search for
 * that scheme is run on a second copy (the same scales, so the same graph) whose shrunk weights the
 * `+clip` candidates quantize; the others keep the unclipped weights, which q8 and fp32 want.
 */
export function nodeMixedHooks(
  data: CalibrationData,
  o: { readonly awq?: boolean | undefined; readonly exclude?: readonly string[] | undefined } = {},
): MixedHooks {
  const awqOptions = { scheme: 'q4', blockSize: 128, exclude: o.exclude, equalizeNorms: false } as const;
  return {
    gptq: async (model, c) => (await gptqPrecompute(model, candidateOptions(c, o.exclude), data)).precomputed,
    gptqGroups: async (model, groups) => (await gptqPrecomputeGroups(model, groups, data)).precomputed,
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

/** One scheme for every weight, by GPTQ or AWQ+GPTQ: what the guard weighs a mixed plan against. */
export interface SingleForm {
  readonly label: string;
  readonly candidate: Candidate;
  /** AWQ searched for this very scheme and block size, then GPTQ (as `quantize --awq --calib`). */
  readonly awq: boolean;
}

/** Whether AWQ's search models scheme `c` (not SpQR's second-level scales and outliers). */
function awqTakes(c: Candidate): boolean {
  try {
    awqScheme(candidateOptions(c));
    return true;
  } catch {
    return false;
  }
}

/** Each candidate as a whole model by GPTQ and, with `awq` where AWQ takes its scheme, by AWQ+GPTQ. */
export function singleForms(candidates: readonly Candidate[], awq: boolean): SingleForm[] {
  return candidates.flatMap((c) => [
    { label: `all ${c.label}`, candidate: c, awq: false },
    ...(awq && awqTakes(c) ? [{ label: `all ${c.label} after AWQ for it`, candidate: c, awq: true }] : []),
  ]);
}

/** The single-scheme model the quantize flows write for `form`, fitted on `data`. */
export async function singleFormModel(
  bytes: Uint8Array,
  form: SingleForm,
  data: CalibrationData,
  exclude?: readonly string[],
): Promise<{ bytes: Uint8Array; layers: LayerReport[] }> {
  const o = { scheme: form.candidate.scheme as SchemeName, blockSize: form.candidate.blockSize, exclude };
  const q = form.awq
    ? await quantizeModelBytesAwq(bytes, o, data, { gptq: true })
    : await quantizeModelBytesGptq(bytes, o, data);
  return { bytes: q.bytes, layers: q.report.layers };
}

export interface GuardResult {
  /** The mixed plan's entry, then every single form's that was fitted (over the budget ones with bits only). */
  readonly entries: GuardEntry[];
  /** The winner: undefined for the mixed plan, else the single form to write. */
  readonly single?: SingleForm | undefined;
}

/**
 * The held-out guard: the mixed plan and every single form are fitted on one half of the
 * calibration samples and scored on the other (both ways, costs averaged, by `objective`: KL by
 * default); the one of least cost within
 * `budgetBits` wins. `folds` given (cross-fitting), the plan's own score on them is `plan.measuredKl`;
 * otherwise its candidates are fitted on each half here. `cache` keeps the single forms' scores
 * across budgets (they do not depend on it). With `refit` (default) the plan is fitted on each half
 * as it is written (refitModel: one sequential GPTQ pass over the plan), and so scored here even
 * when cross-fitted, since the folds' measurements are of the assembled models.
 */
export async function guardPlan(
  bytes: Uint8Array,
  data: CalibrationData,
  plan: MixedPlan,
  forms: readonly SingleForm[],
  budgetBits: number,
  o: {
    readonly awq?: boolean | undefined;
    readonly exclude?: readonly string[] | undefined;
    readonly crossFitted?: boolean | undefined;
    readonly cache?: Map<string, GuardEntry> | undefined;
    readonly refit?: boolean | undefined;
    readonly objective?: Objective | undefined;
  } = {},
): Promise<GuardResult> {
  const halves = pairs(splitCalibration(data, 2));
  const scored = o.objective ? pairs(splitObjective(o.objective, 2)).map(([, score]) => score) : [];
  const refs = await sequential([...halves.entries()], ([k, [, score]]) =>
    referenceOutputs(nodeRuntime, bytes, score, o.exclude, scored[k]),
  );
  const heldOut = async (fit: (d: CalibrationData) => Promise<Uint8Array>) => {
    let sum = 0;
    for (const [k, [train, score]] of halves.entries())
      sum += await klFromReference(nodeRuntime, await fit(train), score, refs[k] as (typeof refs)[number]);
    return sum / halves.length;
  };
  const used = [...new Map([...plan.choice.values()].map((c) => [c.label, c])).values()];
  const refit = o.refit ?? true;
  const mixedKl =
    o.crossFitted && plan.measuredKl !== undefined && !refit
      ? plan.measuredKl
      : await heldOut(async (d) => {
          const prep = { exclude: o.exclude, candidateRuns: !refit };
          const setup = await prepareMixed(bytes, used, prep, nodeMixedHooks(d, o));
          return (await writtenModelBytes(setup, plan, refit)).bytes;
        });
  const mixedBits = (plan.bytes * 8) / Math.max(1, plan.params);
  const entries: GuardEntry[] = [{ label: 'mixed', bits: mixedBits, heldOutKl: mixedKl }];
  for (const form of forms) {
    let e = o.cache?.get(form.label);
    if (!e) {
      let bits = NaN;
      const kl = await heldOut(async (d) => {
        const m = await singleFormModel(bytes, form, d, o.exclude);
        bits = trueLinearBits(m.layers);
        return m.bytes;
      });
      e = { label: form.label, bits, heldOutKl: kl };
      o.cache?.set(form.label, e);
    }
    entries.push(e);
  }
  const best = pickGuarded(entries, budgetBits);
  return { entries, single: forms.find((f) => f.label === best?.label) };
}

export interface SensitivityFileOptions {
  readonly calib?: readonly string[] | undefined;
  /** Candidates as `scheme[:block]` (default DEFAULT_CANDIDATES). */
  readonly schemes?: readonly string[] | undefined;
  readonly exclude?: readonly string[] | undefined;
  /** AWQ's scales folded into the fp32 model before every candidate (flows/awq.ts). */
  readonly awq?: boolean | undefined;
  /**
   * What a choice costs: 'kl' (default), the mean KL of the outputs from fp32's; 'task', the rise of
   * the mean cross-entropy against `labels` (a classifier) or the next tokens (a causal LM).
   */
  readonly loss?: string | undefined;
  /** With `loss` task on a classifier: .npy of one int class per calibration sample. */
  readonly labels?: string | undefined;
  readonly progress?: ((done: number, total: number) => void) | undefined;
}

/** The objective the options ask for, its labels read and counted against the samples. */
function objectiveOf(o: SensitivityFileOptions, data: CalibrationData): Objective {
  const loss = o.loss ?? 'kl';
  if (loss !== 'kl' && loss !== 'task')
    throw new OptionError('QK_BAD_OPTION', `\`loss\` '${loss}' is not kl or task`, 'give `loss` kl or task', ['loss']);
  if (o.labels === undefined) return { loss };
  if (loss !== 'task')
    throw new OptionError(
      'QK_BAD_OPTION',
      '`labels` are scored only by the task loss',
      'add `loss` task, or drop `labels`',
      ['labels', 'loss'],
    );
  const labels = readNpy(readFileSync(o.labels), o.labels);
  checkLabelCount(labels, Math.min(...[...data.values()].map((t) => t.dims[0] ?? 0)));
  return { loss, labels };
}

function load(
  path: string,
  o: SensitivityFileOptions,
): { bytes: Uint8Array; data: CalibrationData; candidates: Candidate[]; notes: string[]; objective: Objective } {
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
  return { bytes, data: calib.data, candidates, notes: calib.notes, objective: objectiveOf(o, calib.data) };
}

/** Whether the task loss applies to this model and data: one fp32 pass, before any fitting. */
async function checkObjective(
  bytes: Uint8Array,
  data: CalibrationData,
  o: SensitivityFileOptions,
  objective: Objective,
) {
  if (objective.loss === 'task') await referenceOutputs(nodeRuntime, bytes, data, o.exclude, objective);
}

export async function sensitivityFile(
  path: string,
  o: SensitivityFileOptions,
): Promise<SensitivityResult & { candidates: Candidate[]; notes: string[] }> {
  const { bytes, data, candidates, notes, objective } = load(path, o);
  await checkObjective(bytes, data, o, objective);
  const setup = await prepareMixed(bytes, candidates, { exclude: o.exclude }, nodeMixedHooks(data, o));
  const r = await foldSensitivity(bytes, candidates, o, { setup, data, objective });
  return { ...r, candidates, notes: [...notes, ...setup.notes] };
}

/** Every weight's costs under every candidate, scored on one fold (or on all samples as one). */
function foldSensitivity(
  bytes: Uint8Array,
  candidates: readonly Candidate[],
  o: SensitivityFileOptions,
  f: ScoringFold,
): Promise<SensitivityResult> {
  return measureSensitivity(
    nodeRuntime,
    bytes,
    f.data,
    candidates,
    { exclude: o.exclude, objective: f.objective },
    o.progress,
    f.setup,
  );
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
  /**
   * With `targetBits`/`targetSize` (default on): weigh the plan against each single scheme that fits
   * (guardPlan) on samples nothing was fitted on, and write the single scheme if it loses less.
   */
  readonly guard?: boolean | undefined;
  /**
   * Write the plan refitted (default on): one sequential GPTQ pass in which each weight takes its
   * planned form on top of the layers before it in theirs (refitModel); false: assembled from the
   * candidates' whole-model runs, as the plan was measured.
   */
  readonly refit?: boolean | undefined;
  readonly force?: boolean | undefined;
}

/** Fewer calibration samples than this and the guard's held-out comparison is noted as coarse. */
const FEW_GUARD_SAMPLES = 128;

/** [fit, score] for two folds: each half fitted, the other scored. */
function pairs<T>(halves: T[]): [T, T][] {
  const [a, b] = halves as [T, T];
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
  const { bytes, data, candidates, notes, objective } = load(inPath, o);
  await checkObjective(bytes, data, o, objective);
  const setup = await prepareMixed(bytes, candidates, { exclude: o.exclude }, nodeMixedHooks(data, o));
  notes.push(...setup.notes);
  // Cross-fitting: each half's GPTQ/AWQ scored on the other half; the written model is fitted on all.
  const folds: ScoringFold[] = [];
  const foldObjectives = pairs(splitObjective(objective, 2)).map(([, score]) => score);
  if (o.crossFit)
    for (const [k, [fit, score]] of pairs(splitCalibration(data, 2)).entries())
      folds.push({
        setup: await prepareMixed(bytes, candidates, { exclude: o.exclude }, nodeMixedHooks(fit, o)),
        data: score,
        objective: foldObjectives[k],
      });
  const s =
    folds.length > 0
      ? averageSensitivity(await sequential(folds, (f) => foldSensitivity(bytes, candidates, o, f)))
      : await foldSensitivity(bytes, candidates, o, { setup, data, objective });
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
          { rounds: o.refineRounds, folds: folds.length > 0 ? folds : undefined, objective },
        );
  const budget =
    o.maxLossIncrease !== undefined ? plan.bytes : (o.targetSize ?? ((o.targetBits as number) * params) / 8);
  const guarded =
    o.maxLossIncrease === undefined && o.guard !== false
      ? await guardPlan(
          bytes,
          data,
          plan,
          singleForms(guardCandidates(s, candidates, budget), o.awq ?? false),
          (budget * 8) / params,
          {
            awq: o.awq,
            exclude: o.exclude,
            crossFitted: folds.length > 0,
            refit: o.refit,
            objective,
          },
        )
      : undefined;
  const single = guarded?.single;
  const name = objectiveName(objective.loss);
  const refit = o.refit ?? true;
  const m = single
    ? await singleFormModel(bytes, single, data, o.exclude)
    : await writtenModelBytes(setup, plan, refit);
  await writeFileAtomic(outPath, [m.bytes], { force: o.force ?? false, inputs: [inPath] });
  if (guarded)
    notes.push(
      `held-out guard (fitted on one half of the calibration samples, scored on the other): ${guarded.entries
        .map((e) => `${e.label} ${e.bits.toFixed(2)} bits ${name} ${e.heldOutKl.toExponential(3)}`)
        .join('; ')} → ${single ? `written: ${single.label}` : 'the mixed plan'}`,
    );
  const samples = Math.min(...[...data.values()].map((t) => t.dims[0] ?? 0));
  if (guarded && samples < FEW_GUARD_SAMPLES)
    notes.push(
      `the guard scored each half on ${Math.floor(samples / 2)} samples: margins of a few percent between its entries are within what so few resolve; pass more \`calib\` samples (${FEW_GUARD_SAMPLES} or more) for a choice that holds on unseen data`,
    );
  if (single)
    return {
      plan: {
        ...plan,
        choice: new Map([...plan.choice.keys()].map((w) => [w, single.candidate])),
        bytes: (trueLinearBits(m.layers) * params) / 8,
        source: `guard: ${single.label}`,
      },
      layers: m.layers,
      sensitivity: s,
      outputFileBytes: m.bytes.length,
      notes,
    };
  const allowed =
    o.maxLossIncrease !== undefined
      ? `summed ${name} (negative ones counted as 0) ≤ ln(1 + ${o.maxLossIncrease}) = ${Math.log1p(o.maxLossIncrease).toExponential(3)}`
      : `${Math.floor(budget)} bytes allowed`;
  if (refit && [...plan.choice.values()].some((c) => c.gptq))
    notes.push(
      'refitted: one sequential GPTQ pass over the plan, each weight in its planned form on top of the layers before it in theirs',
    );
  notes.push(
    `mixed precision: ${((plan.bytes * 8) / Math.max(1, plan.params)).toFixed(3)} bits per linear weight (${plan.bytes} bytes; ${allowed}), summed ${name} of the choices ${plan.predictedKl.toExponential(3)}${plan.measuredKl === undefined ? '' : `, joint ${name} ${plan.measuredKl.toExponential(3)} (${plan.source ?? ''})`}`,
  );
  return { plan, layers: m.layers, sensitivity: s, outputFileBytes: m.bytes.length, notes };
}

import { OptionError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Initializer, Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { removeDeadNodes } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { equalizeNormScales } from '../passes/activation/smoothquant.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { findWeightSites, quantizeWeights, userSkipReason } from '../passes/weight-only/index.js';
import { rejectLinear } from '../passes/weight-only/linear-site.js';
import { isWeightOnlyScheme } from './schemes.js';
import type { SchemeName } from '../passes/weight-only/scheme.js';
import { checkBlockSize } from '../passes/weight-only/scheme.js';
import type { LayerReport, PrecomputedWeights, WeightOnlyOptions } from '../passes/weight-only/types.js';
import { chooseUnderBudget } from '../quant/knapsack.js';
import type { CalibrationData } from './calibrate.js';
import { createSession, runBatches } from './calibrate.js';
import type { OnnxRuntime } from './runtime.js';
import { makeTensor, type Tensor } from '../tensor/tensor.js';
import { meanCrossEntropy, taskTargets } from './task-loss.js';

/*
 * Sensitivity analysis and mixed precision under a size budget. A candidate is a weight-only
 * scheme at a block size and the method that quantizes it: the data-free quantizer, or GPTQ
 * (`+gptq`, computed once per candidate on the whole model by a caller-supplied hook, since GPTQ
 * runs in Node). For every linear weight and candidate, the model with ONLY that weight in the
 * candidate's form — the very form the mixed model will hold — is run on the calibration data in
 * ONNX Runtime and its output compared with the fp32 model's by the objective: the mean KL divergence
 * of the output distributions (softmax over the last axis, per position), or the rise of the task
 * loss, the mean cross-entropy against labels (flows/task-loss.ts), over fp32's. The latter can be
 * negative (a quantized weight may fit the samples better); the knapsack takes such a cost as a
 * gain. Every cost, plan score and guard score below is the objective's. A multiple-choice knapsack
 * (quant/knapsack.ts) picks one candidate per weight under a byte budget. The costs do not add
 * exactly (errors of consecutive layers compound or cancel), so the plan is then refined on the
 * joint model: every weight's costs measured again on top of the plan (the rest quantized as
 * planned), the knapsack solved on those, and the candidate plans — these, and every single
 * candidate applied to all weights that fits the budget — compared by their measured joint KL.
 *
 * Every measurement assembles its model from the candidates' whole-model GPTQ runs: a weight's
 * GPTQ form there compensates for upstream layers in its own candidate's form, not in the plan's.
 * The written model is refitted instead (refitModel): one sequential GPTQ pass in which every
 * layer is quantized in its planned form on top of the upstream layers in theirs.
 */

/** A candidate: a weight-only scheme at a block size ('fp32' keeps the weight). */
export interface Candidate {
  readonly label: string;
  readonly scheme: SchemeName | 'fp32';
  readonly blockSize?: number | undefined;
  /** GPTQ on the calibration data instead of the data-free quantizer. */
  readonly gptq?: boolean | undefined;
  /** Quantizes the weight as AWQ's clipping search left it (MixedHooks.rescale's `clipped`). */
  readonly clip?: boolean | undefined;
}

/**
 * `q4:128` → q4 at block 128 by the data-free quantizer; `+gptq` → by GPTQ; `+clip` → on the
 * weights AWQ's clipping search shrank (with `awq`); `fp32` keeps the weight.
 */
export function parseCandidate(text: string): Candidate {
  const [head, ...flags] = text.split('+') as [string, ...string[]];
  const gptq = flags.includes('gptq');
  const clip = flags.includes('clip');
  const [name, block] = head.split(':') as [string, string | undefined];
  const unknown = flags.find((f) => f !== 'gptq' && f !== 'clip');
  if (name === 'fp32' && flags.length === 0) return { label: 'fp32', scheme: 'fp32' };
  if (!isWeightOnlyScheme(name) || name === 'fp16' || unknown !== undefined)
    throw new OptionError(
      'QK_UNKNOWN_SCHEME',
      `candidate '${text}' is not a weight-only scheme[:block][+clip][+gptq]`,
      '`schemes` takes e.g. q2-asym:64+gptq,q4:128+clip+gptq,q4:32,q8-block:128,fp32',
      ['schemes'],
    );
  const blockSize = block === undefined ? undefined : checkBlockSize(Number(block));
  const label = `${blockSize === undefined ? name : `${name}:${blockSize}`}${clip ? '+clip' : ''}${gptq ? '+gptq' : ''}`;
  return { label, scheme: name, blockSize, gptq, clip };
}

/**
 * GPTQ at 2, 3 and 4 bits over a range of block sizes — with SpQR's 3 bits (q3-spqr, ~3.5–3.7 bits
 * per weight) and the k-quant q4 (~4.6), each the best single scheme near its size on our LMs, so the
 * knapsack can reproduce them — q8 and fp32 for the layers that need them.
 */
export const DEFAULT_CANDIDATES = [
  'q2-asym:64+gptq',
  'q2-asym:32+gptq',
  'q3-spqr:32+gptq',
  'q3-spqr:16+gptq',
  'q4:256+gptq',
  'q4:128+gptq',
  'q4:64+gptq',
  'q4:32+gptq',
  'q4-k:32+gptq',
  'q8-block:128',
  'fp32',
];

/** With `awq`, also q4 g128 on AWQ's clipped weights (the scheme the clipping was searched for). */
export const AWQ_CANDIDATES = ['q4:128+clip+gptq'];

export interface WeightCost {
  readonly label: string;
  /** Bytes of the weight in this form (true bytes: codes, scales, zero points, as packed). */
  readonly bytes: number;
  /**
   * The objective's cost, nats: mean KL(fp32 ‖ this) per output position, or (`loss` task) the
   * mean cross-entropy per labelled position less fp32's, which may be negative.
   */
  readonly kl: number;
}

export interface WeightSensitivity {
  readonly weight: string;
  /** The first node reading it (a readable name where the weight's is an exporter's). */
  readonly node: string;
  readonly params: number;
  readonly costs: WeightCost[];
}

export interface SensitivityResult {
  readonly weights: WeightSensitivity[];
  /** Positions (output rows; with `loss` task, the labelled ones) the cost is averaged over. */
  readonly positions: number;
  /** What the costs measure (absent: kl). */
  readonly loss?: LossObjective | undefined;
}

/** How a model's outputs are scored against the fp32 model's on the calibration samples. */
export type LossObjective = 'kl' | 'task';

export interface Objective {
  readonly loss: LossObjective;
  /** With `loss` task on a classifier: the class of each calibration sample (first axis). */
  readonly labels?: Tensor | undefined;
}

export const KL_OBJECTIVE: Objective = { loss: 'kl' };

/** The objective's name in tables and notes. */
export function objectiveName(loss: LossObjective | undefined): string {
  return loss === 'task' ? 'Δloss' : 'KL';
}

/** One objective per part of splitCalibration(data, parts): the labels cut at the same samples. */
export function splitObjective(o: Objective, parts: number): Objective[] {
  const labels = o.labels;
  if (!labels) return Array.from({ length: parts }, () => o);
  return splitCalibration(new Map([['labels', labels]]), parts).map((m) => ({ ...o, labels: m.get('labels') }));
}

/** The weights the pass would quantize (MatMul/Gemm sites, user exclusions honoured), in order. */
function linearWeights(
  model: Model,
  options: Pick<WeightOnlyOptions, 'exclude' | 'keepFirstLast'>,
): { weight: string; node: string }[] {
  const sites = findWeightSites(model);
  const skip = userSkipReason(sites, { scheme: 'q4', ...options });
  const names: { weight: string; node: string }[] = [];
  // A weight also read as an embedding table (tied head) keeps its fp32 table whatever the head
  // takes, so its bytes would not follow the choice: it stays out of the plan (and fp32).
  const tied = new Set(sites.filter((s) => s.node.opType === 'Gather').map((s) => s.weight.name));
  for (const s of sites) {
    if (skip(s) || rejectLinear(s, model.graph) || s.node.opType === 'Gather' || tied.has(s.weight.name)) continue;
    if (!names.some((x) => x.weight === s.weight.name)) names.push({ weight: s.weight.name, node: s.node.name });
  }
  return names;
}

/** Output logits (first output) on the calibration data, concatenated, and their shape per sample. */
async function outputs(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
): Promise<{ data: Float32Array; classes: number; sampleDims: number[] }> {
  const session = await createSession(runtime, bytes);
  const parts: Float32Array[] = [];
  let classes = 1;
  let sampleDims: number[] = [];
  try {
    const name = session.outputNames[0] as string;
    await runBatches(runtime, session, data, [name], (out) => {
      const t = out[name];
      if (!t || !(t.data instanceof Float32Array)) return;
      classes = t.dims[t.dims.length - 1] as number;
      sampleDims = t.dims.slice(1);
      parts.push(Float32Array.from(t.data));
    });
  } finally {
    await session.release();
  }
  const all = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return { data: all, classes, sampleDims };
}

/** The fp32 model's outputs on some samples, with what a model is scored by against them. */
export interface Reference {
  readonly data: Float32Array;
  readonly classes: number;
  /** `loss` task: each output row's class (NO_LABEL: unscored) and fp32's mean cross-entropy on them. */
  readonly task?: { readonly targets: Int32Array; readonly crossEntropy: number } | undefined;
}

/** Output rows the cost is averaged over. */
function scoredPositions(ref: Reference): number {
  return ref.task ? ref.task.targets.reduce((n, t) => n + (t >= 0 ? 1 : 0), 0) : ref.data.length / ref.classes;
}

async function reference(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  objective: Objective,
): Promise<Reference> {
  const out = await outputs(runtime, bytes, data);
  if (objective.loss !== 'task') return { data: out.data, classes: out.classes };
  const targets = taskTargets(data, out.sampleDims, objective.labels);
  return { ...out, task: { targets, crossEntropy: meanCrossEntropy(out.data, out.classes, targets) } };
}

/** The objective's cost of outputs `q` against the reference: KL from it, or the cross-entropy over its. */
export function costAgainst(ref: Reference, q: Float32Array): number {
  return ref.task
    ? meanCrossEntropy(q, ref.classes, ref.task.targets) - ref.task.crossEntropy
    : meanKl(ref.data, q, ref.classes);
}

/** Mean over rows of KL(softmax(ref) ‖ softmax(q)), in float64. */
export function meanKl(ref: Float32Array, q: Float32Array, classes: number): number {
  const rows = ref.length / classes;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let mr = -Infinity;
    let mq = -Infinity;
    for (let c = 0; c < classes; c++) {
      mr = Math.max(mr, ref[o + c] as number);
      mq = Math.max(mq, q[o + c] as number);
    }
    let zr = 0;
    let zq = 0;
    for (let c = 0; c < classes; c++) {
      zr += Math.exp((ref[o + c] as number) - mr);
      zq += Math.exp((q[o + c] as number) - mq);
    }
    const lr = mr + Math.log(zr);
    const lq = mq + Math.log(zq);
    let kl = 0;
    for (let c = 0; c < classes; c++) {
      const a = (ref[o + c] as number) - lr;
      const b = (q[o + c] as number) - lq;
      kl += Math.exp(a) * (a - b);
    }
    total += Math.max(0, kl);
  }
  return rows > 0 ? total / rows : 0;
}

/** The fp32 model with norm scales equalized once (every mixed pass then skips it). */
function prepared(bytes: Uint8Array, exclude: readonly string[] | undefined): Model {
  const model = modelFromProto(decodeModel(bytes));
  foldBatchNorm(model);
  equalizeNormScales(model, { exclude });
  return model;
}

/** The weight-only options a candidate is written with (and its GPTQ results computed for). */
export function candidateOptions(c: Candidate, exclude?: readonly string[]): WeightOnlyOptions {
  return { scheme: c.scheme as SchemeName, blockSize: c.blockSize, exclude, equalizeNorms: false };
}

/**
 * What the calibrated methods need from the caller (Node: flows/mixed-file.ts nodeMixedHooks).
 * Both receive the prepared fp32 model (norm scales already equalized).
 */
export interface MixedHooks {
  /** GPTQ's results for every linear weight under candidate `c`, on `model` (left unchanged). */
  readonly gptq?: ((model: Model, c: Candidate) => Promise<PrecomputedWeights>) | undefined;
  /**
   * One sequential GPTQ pass over `model`, each weight in the scheme of the group whose options
   * take it (their `exclude` leaves out the others' weights): what refitModel writes a plan with.
   */
  readonly gptqGroups?:
    ((model: Model, groups: readonly WeightOnlyOptions[]) => Promise<PrecomputedWeights>) | undefined;
  /**
   * Rewrites the fp32 model in place before anything is measured (AWQ's scales); returns notes and
   * optionally the same graph with some weights clipped (for the `clip` candidates).
   */
  readonly rescale?: ((model: Model) => Promise<{ notes: string[]; clipped?: Model | undefined }>) | undefined;
}

/** The prepared model and each GPTQ candidate's results: what every plan is applied to. */
export interface MixedSetup {
  /** The prepared fp32 model (AWQ-rescaled when asked), encoded: each plan decodes a fresh copy. */
  readonly base: Uint8Array;
  readonly precomputed: ReadonlyMap<string, PrecomputedWeights>;
  /** The weights as clipped (same names and graph as `base`), for the `clip` candidates. */
  readonly clipped: ReadonlyMap<string, Initializer>;
  readonly exclude?: readonly string[] | undefined;
  readonly notes: string[];
  /** The hook refitModel runs its one pass with (MixedHooks.gptqGroups). */
  readonly gptqGroups?: MixedHooks['gptqGroups'];
}

export interface PrepareOptions extends Pick<WeightOnlyOptions, 'exclude'> {
  /**
   * GPTQ on the whole model for every `+gptq` candidate (default true), which every measured plan
   * is assembled from; false when the setup only refits a plan already chosen (refitModel).
   */
  readonly candidateRuns?: boolean | undefined;
}

export async function prepareMixed(
  bytes: Uint8Array,
  candidates: readonly Candidate[],
  options: PrepareOptions = {},
  hooks: MixedHooks = {},
  progress?: (done: number, total: number) => void,
): Promise<MixedSetup> {
  const model = prepared(bytes, options.exclude);
  const scaled = hooks.rescale ? await hooks.rescale(model) : { notes: [] };
  const notes = scaled.notes;
  const base = encodeModel(modelToProto(model));
  // Only the weights the clipping changed: the rest of a clip candidate is the base's.
  const clipped = new Map<string, Initializer>();
  for (const [name, init] of scaled.clipped?.graph.initializers ?? []) {
    const mine = model.graph.initializers.get(name);
    if (!mine || init.dtype !== 'float32' || mine.dtype !== 'float32') continue;
    const a = init.load().data as Float32Array;
    const b = mine.load().data as Float32Array;
    if (a.length === b.length && a.some((v, i) => v !== b[i])) clipped.set(name, init);
  }
  const clipping = candidates.find((c) => c.clip);
  if (clipping && !scaled.clipped)
    throw new OptionError(
      'QK_BAD_OPTION',
      `candidate ${clipping.label} needs AWQ's clipped weights`,
      "add `awq`, or drop the '+clip' candidates from `schemes`",
      ['awq', 'schemes'],
    );
  const precomputed = new Map<string, PrecomputedWeights>();
  const gptq = candidates.filter((c) => c.gptq);
  if (gptq.length > 0 && !hooks.gptq)
    throw new OptionError(
      'QK_BAD_OPTION',
      `candidate ${gptq[0]?.label} needs GPTQ, which runs only in Node`,
      "drop the '+gptq' candidates from `schemes`",
      ['schemes'],
    );
  for (const [i, c] of (options.candidateRuns === false ? [] : gptq).entries()) {
    const m = modelFromProto(decodeModel(base));
    if (c.clip) for (const [name, init] of clipped) m.graph.initializers.set(name, init);
    precomputed.set(c.label, await (hooks.gptq as NonNullable<MixedHooks['gptq']>)(m, c));
    progress?.(i + 1, gptq.length);
  }
  return { base, precomputed, clipped, exclude: options.exclude, notes, gptqGroups: hooks.gptqGroups };
}

/** Quantizes `model` in place: each weight by its candidate (weights not in `plan` stay fp32). */
export function applyPlan(
  model: Model,
  plan: ReadonlyMap<string, Candidate>,
  precomputed: ReadonlyMap<string, PrecomputedWeights> = new Map(),
  clipped: ReadonlyMap<string, Initializer> = new Map(),
): LayerReport[] {
  const layers: LayerReport[] = [];
  const byLabel = new Map<string, { c: Candidate; weights: Set<string> }>();
  for (const [w, c] of plan) {
    if (c.scheme === 'fp32') continue;
    const e = byLabel.get(c.label) ?? { c, weights: new Set<string>() };
    e.weights.add(w);
    byLabel.set(c.label, e);
  }
  for (const { c, weights } of byLabel.values()) {
    const others = [...model.graph.initializers.keys()].filter((n) => !weights.has(n));
    const pre = precomputed.get(c.label);
    if (c.gptq && !pre) throw new Error(`mixed: no GPTQ results for ${c.label}`);
    if (c.clip)
      for (const w of weights) {
        const init = clipped.get(w);
        if (init) model.graph.initializers.set(w, init);
      }
    const r = quantizeWeights(model, { ...candidateOptions(c, others), precomputed: pre });
    layers.push(...r.layers.filter((l) => weights.has(l.weight)));
  }
  removeDeadNodes(model.graph);
  return layers;
}

/** The model of `plan` applied to the setup's base, encoded, with its layer reports. */
export function planModel(setup: MixedSetup, plan: ReadonlyMap<string, Candidate>) {
  const model = modelFromProto(decodeModel(setup.base));
  const layers = applyPlan(model, plan, setup.precomputed, setup.clipped);
  return { bytes: encodeModel(modelToProto(model)), layers };
}

/**
 * The model of `plan` on the setup's base, fitted as written: the data-free forms first (they do
 * not depend on the layers before them), then one sequential GPTQ pass (setup.gptqGroups) over the
 * `+gptq` weights, each in its own candidate's scheme and block size (on AWQ's clipped weights for
 * `+clip`), each stage's inputs collected on the model whose earlier layers already hold their
 * planned forms. A plan of one `+gptq` candidate comes out as that candidate's own run.
 */
export async function refitModel(
  setup: MixedSetup,
  plan: ReadonlyMap<string, Candidate>,
): Promise<{ bytes: Uint8Array; layers: LayerReport[] }> {
  const model = modelFromProto(decodeModel(setup.base));
  const byLabel = new Map<string, { c: Candidate; weights: Set<string> }>();
  for (const [w, c] of plan) {
    if (!c.gptq || c.scheme === 'fp32') continue;
    const e = byLabel.get(c.label) ?? { c, weights: new Set<string>() };
    e.weights.add(w);
    byLabel.set(c.label, e);
  }
  const layers = applyPlan(model, new Map([...plan].filter(([, c]) => !c.gptq)), new Map(), setup.clipped);
  if (byLabel.size === 0) return { bytes: encodeModel(modelToProto(model)), layers };
  if (!setup.gptqGroups) throw new Error('mixed: refitting a +gptq plan needs the gptqGroups hook');
  // GPTQ starts a `+clip` weight from its clipped values, as the candidate's own run does.
  for (const { c, weights } of byLabel.values())
    if (c.clip)
      for (const w of weights) {
        const init = setup.clipped.get(w);
        if (init) model.graph.initializers.set(w, init);
      }
  const names = [...model.graph.initializers.keys()];
  const groups = [...byLabel.values()].map(({ c, weights }) =>
    candidateOptions(
      c,
      names.filter((n) => !weights.has(n)),
    ),
  );
  const fitted = await setup.gptqGroups(model, groups);
  const gptqPlan = new Map([...plan].filter(([, c]) => c.gptq));
  layers.push(...applyPlan(model, gptqPlan, new Map([...byLabel.keys()].map((l) => [l, fitted])), setup.clipped));
  return { bytes: encodeModel(modelToProto(model)), layers };
}

/** The objective's cost of one model against the reference on the calibration data. */
async function costOf(runtime: OnnxRuntime, bytes: Uint8Array, data: CalibrationData, ref: Reference): Promise<number> {
  return costAgainst(ref, (await outputs(runtime, bytes, data)).data);
}

/**
 * Sensitivity of every linear weight of `bytes` to every candidate. With `on`, each weight's cost
 * is measured on top of that plan (every other weight as it chooses): the joint model's cost with
 * this weight in each candidate's form, less the plan's own. `objective` (default KL) scores them.
 */
export async function measureSensitivity(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  candidates: readonly Candidate[],
  options: Pick<WeightOnlyOptions, 'exclude' | 'keepFirstLast'> & { readonly objective?: Objective | undefined } = {},
  progress?: (done: number, total: number) => void,
  setupGiven?: MixedSetup,
  on?: { readonly plan: ReadonlyMap<string, Candidate>; readonly kl: number },
): Promise<SensitivityResult> {
  const setup = setupGiven ?? (await prepareMixed(bytes, candidates, options));
  const original = prepared(bytes, options.exclude);
  const objective = options.objective ?? KL_OBJECTIVE;
  const ref = await reference(runtime, encodeModel(modelToProto(original)), data, objective);
  const weights = linearWeights(original, options);
  const result: WeightSensitivity[] = [];
  let done = 0;
  for (const { weight: w, node } of weights) {
    const init = original.graph.initializers.get(w);
    const params = (init?.dims ?? []).reduce((a, b) => a * b, 1);
    const costs: WeightCost[] = [];
    for (const c of candidates) {
      const plan = new Map(on?.plan ?? []);
      plan.set(w, c);
      const m = planModel(setup, on ? plan : new Map([[w, c]]));
      const layer = m.layers.find((l) => l.weight === w);
      // True bytes, as every single-scheme size is counted (q4-k stores its 6-bit scales dequantized).
      const bytesOf = layer && layer.scheme !== 'fp32' ? (layer.trueBytes ?? layer.bytesAfter) : 4 * params;
      if (on && on.plan.get(w)?.label === c.label) costs.push({ label: c.label, bytes: bytesOf, kl: 0 });
      else if (!on && c.scheme === 'fp32') costs.push({ label: c.label, bytes: 4 * params, kl: 0 });
      else {
        const kl = await costOf(runtime, m.bytes, data, ref);
        costs.push({ label: c.label, bytes: bytesOf, kl: on ? kl - on.kl : kl });
      }
      progress?.(++done, weights.length * candidates.length);
    }
    result.push({ weight: w, node, params, costs });
  }
  return { weights: result, positions: scoredPositions(ref), loss: objective.loss };
}

export interface MixedPlan {
  readonly choice: Map<string, Candidate>;
  readonly bytes: number;
  readonly params: number;
  /** Σ of the chosen costs (the knapsack's objective: KL, or the task loss's rise). */
  readonly predictedKl: number;
  /** The joint model's cost on the calibration data, where measured (refinePlan). */
  readonly measuredKl?: number | undefined;
  /** How it was found: the knapsack on single-weight costs, on costs over a plan, or one candidate for all. */
  readonly source?: string | undefined;
}

/**
 * The scheme per weight of least summed cost within `budgetBytes` (of the linear weights). A negative
 * cost (a task loss that fell) is a gain like any other: the knapsack's recurrence needs no sign.
 */
export function planMixed(s: SensitivityResult, candidates: readonly Candidate[], budgetBytes: number): MixedPlan {
  const items = s.weights.map((w) => w.costs.map((c) => ({ bytes: c.bytes, cost: c.kl })));
  const pick = chooseUnderBudget(items, budgetBytes);
  if (!pick) {
    const least = s.weights.reduce((sum, w) => sum + Math.min(...w.costs.map((c) => c.bytes)), 0);
    throw new OptionError(
      'QK_BAD_OPTION',
      `no choice of ${candidates.map((c) => c.label).join(', ')} fits ${budgetBytes} bytes of linear weights (the smallest takes ${least})`,
      'raise `targetBits` / `targetSize`, or add a smaller candidate to `schemes`',
      ['targetBits', 'targetSize', 'schemes'],
    );
  }
  const choice = new Map<string, Candidate>();
  let bytes = 0;
  let kl = 0;
  let params = 0;
  for (const [i, w] of s.weights.entries()) {
    const cost = w.costs[pick[i] as number] as WeightCost;
    const cand = candidates.find((c) => c.label === cost.label) as Candidate;
    choice.set(w.weight, cand);
    bytes += cost.bytes;
    kl += cost.kl;
    params += w.params;
  }
  return { choice, bytes, params, predictedKl: kl };
}

/**
 * The smallest plan whose summed cost stays within `maxKl`: the least byte budget whose best plan
 * fits, found by bisection (a bigger budget never has a worse best plan). For a language model the
 * expected rise of the cross-entropy is the KL, and the task cost is that rise itself, so a
 * perplexity increase p is maxKl = ln(1 + p) under either objective. A negative task cost counts as
 * 0 here: a loss that fell on the calibration samples must not pay for another weight's rise, or
 * the limit would rest on a gain the samples' noise can make up.
 */
export function planMixedForLoss(
  measured: SensitivityResult,
  candidates: readonly Candidate[],
  maxKl: number,
): MixedPlan {
  const s: SensitivityResult = {
    ...measured,
    weights: measured.weights.map((w) => ({ ...w, costs: w.costs.map((c) => ({ ...c, kl: Math.max(0, c.kl) })) })),
  };
  const least = s.weights.reduce((sum, w) => sum + Math.min(...w.costs.map((c) => c.bytes)), 0);
  const most = s.weights.reduce((sum, w) => sum + Math.max(...w.costs.map((c) => c.bytes)), 0);
  let lo = least;
  let hi = most;
  let best = planMixed(s, candidates, most);
  if (best.predictedKl > maxKl)
    throw new OptionError(
      'QK_BAD_OPTION',
      `even the widest candidates lose ${best.predictedKl.toExponential(2)} nats of ${objectiveName(s.loss)}, over the ${maxKl.toExponential(2)} allowed`,
      'allow a larger `maxLossIncrease`, or add fp32 to `schemes`',
      ['maxLossIncrease', 'schemes'],
    );
  for (let i = 0; i < 30 && hi - lo > 1; i++) {
    const mid = (lo + hi) / 2;
    let plan: MixedPlan | undefined;
    try {
      plan = planMixed(s, candidates, mid);
    } catch {
      plan = undefined;
    }
    if (plan && plan.predictedKl <= maxKl) {
      best = plan;
      hi = mid;
    } else lo = mid;
  }
  return best;
}

/** The plan that puts every weight in candidate `c`, or undefined when that exceeds the budget. */
function uniformPlan(s: SensitivityResult, c: Candidate, budgetBytes: number): MixedPlan | undefined {
  let bytes = 0;
  let kl = 0;
  let params = 0;
  for (const w of s.weights) {
    const cost = w.costs.find((x) => x.label === c.label);
    if (!cost) return undefined;
    bytes += cost.bytes;
    kl += cost.kl;
    params += w.params;
  }
  if (bytes > budgetBytes) return undefined;
  return {
    choice: new Map(s.weights.map((w) => [w.weight, c])),
    bytes,
    params,
    predictedKl: kl,
    source: `all ${c.label}`,
  };
}

/** A setup fitted on some calibration samples and the samples it is scored on. */
export interface ScoringFold {
  readonly setup: MixedSetup;
  readonly data: CalibrationData;
  /** The objective on these samples (their labels); default RefineOptions.objective. */
  readonly objective?: Objective | undefined;
}

export interface RefineOptions {
  /** Rounds of re-measuring every weight's costs on top of the best plan so far (default 1). */
  readonly rounds?: number | undefined;
  /**
   * Cross-fitting: score plans on these folds (each a setup fitted without its samples), averaged,
   * instead of the setup on the data it was fitted on.
   */
  readonly folds?: readonly ScoringFold[] | undefined;
  /** What plans are scored by (default KL), with the labels of `data` where it needs them. */
  readonly objective?: Objective | undefined;
  readonly progress?: ((done: number, total: number) => void) | undefined;
}

/**
 * The knapsack's plan checked and improved on the joint model: its cost measured; then, per round,
 * every weight's costs measured on top of the best plan so far and the knapsack solved again on
 * them; and every candidate that fits the budget for all weights on its own. The plan of least
 * measured cost (by the objective) wins (all of them fit the budget).
 */
export async function refinePlan(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  candidates: readonly Candidate[],
  setup: MixedSetup,
  s: SensitivityResult,
  budgetBytes: number,
  o: RefineOptions = {},
): Promise<MixedPlan> {
  const objective = o.objective ?? KL_OBJECTIVE;
  const folds = o.folds ?? [{ setup, data, objective }];
  const original = encodeModel(modelToProto(prepared(bytes, setup.exclude)));
  const refs: Reference[] = [];
  for (const f of folds) refs.push(await reference(runtime, original, f.data, f.objective ?? objective));
  const kls = new Map<MixedPlan, number[]>();
  const measure = async (p: MixedPlan): Promise<MixedPlan> => {
    const each: number[] = [];
    for (const [k, f] of folds.entries())
      each.push(await costOf(runtime, planModel(f.setup, p.choice).bytes, f.data, refs[k] as Reference));
    const m = { ...p, measuredKl: each.reduce((a, b) => a + b, 0) / each.length };
    kls.set(m, each);
    return m;
  };
  let best = await measure({ ...planMixed(s, candidates, budgetBytes), source: 'knapsack' });
  for (const c of candidates) {
    const u = uniformPlan(s, c, budgetBytes);
    if (!u) continue;
    const m = await measure(u);
    if ((m.measuredKl as number) < (best.measuredKl as number)) best = m;
  }
  for (let round = 1; round <= (o.rounds ?? 1); round++) {
    const parts: SensitivityResult[] = [];
    for (const [k, f] of folds.entries())
      parts.push(
        await measureSensitivity(
          runtime,
          bytes,
          f.data,
          candidates,
          { exclude: setup.exclude, objective: f.objective ?? objective },
          o.progress,
          f.setup,
          { plan: best.choice, kl: (kls.get(best) as number[])[k] as number },
        ),
      );
    const next = await measure({
      ...planMixed(averageSensitivity(parts), candidates, budgetBytes),
      source: `knapsack over a plan, round ${round}`,
    });
    if ((next.measuredKl as number) >= (best.measuredKl as number)) break;
    best = next;
  }
  return best;
}

/** Calibration samples cut into `parts` contiguous runs along the first axis (every input alike). */
export function splitCalibration(data: CalibrationData, parts: number): CalibrationData[] {
  const n = Math.min(...[...data.values()].map((t) => t.dims[0] ?? 0));
  if (!(n >= parts))
    throw new OptionError(
      'QK_CALIB_EMPTY',
      `cross-fitting needs at least ${parts} calibration samples, got ${n}`,
      'give more samples in `calib`, or drop `crossFit`',
      ['calib', 'crossFit'],
    );
  return Array.from({ length: parts }, (_, k) => {
    const [a, b] = [Math.floor((k * n) / parts), Math.floor(((k + 1) * n) / parts)];
    const out: CalibrationData = new Map();
    for (const [name, t] of data) {
      const row = (t.dims.slice(1) as number[]).reduce((x, y) => x * y, 1);
      const d = t.data as { slice(a: number, b: number): Tensor['data'] };
      out.set(name, makeTensor(t.dtype, [b - a, ...t.dims.slice(1)], d.slice(a * row, b * row)));
    }
    return out;
  });
}

/** The mean of several measurements of the same weights and candidates (cross-fitting's folds). */
export function averageSensitivity(rs: readonly SensitivityResult[]): SensitivityResult {
  const first = rs[0] as SensitivityResult;
  return {
    positions: rs.reduce((a, r) => a + r.positions, 0),
    loss: first.loss,
    weights: first.weights.map((w, i) => ({
      ...w,
      costs: w.costs.map((c, j) => ({
        ...c,
        kl: rs.reduce((a, r) => a + ((r.weights[i] as WeightSensitivity).costs[j] as WeightCost).kl, 0) / rs.length,
      })),
    })),
  };
}

/**
 * True bits per quantized linear weight of a written model: the bytes its codes, scales and zero
 * points need (`trueBytes` where the stored form is wider, as for q4-k's dequantized scales) over
 * the parameters of the quantized MatMul/Gemm weights. A tied head's fp32 table, kept for the
 * embedding Gather, is not the head's form and is not counted.
 */
export function trueLinearBits(layers: readonly LayerReport[]): number {
  let bytes = 0;
  let params = 0;
  for (const l of layers) {
    if (l.scheme === 'fp32' || !l.opTypes.some((o) => o === 'MatMul' || o === 'Gemm')) continue;
    const kept = l.note.includes('fp32 copy kept') ? l.bytesBefore : 0;
    bytes += (l.trueBytes ?? l.bytesAfter) - kept;
    params += l.dims.reduce((a, b) => a * b, 1);
  }
  return params > 0 ? (bytes * 8) / params : NaN;
}

/** A model the guard weighs: the mixed plan, or one scheme for every weight. */
export interface GuardEntry {
  readonly label: string;
  /** True bits per linear weight (trueLinearBits). */
  readonly bits: number;
  /** The objective's cost (mean KL from fp32, or the task loss's rise) on calibration samples the model's fitting (GPTQ, AWQ) did not see. */
  readonly heldOutKl: number;
}

/**
 * The entry of least held-out KL among those within `budgetBits`, the earlier one on a tie (the
 * mixed plan goes first). Undefined when none fits. The guard exists because the knapsack's costs
 * are measured on the samples GPTQ was fitted on, which favours GPTQ's own forms: weighed on samples
 * nothing was fitted on, the mixed plan must beat every single scheme it could have been, or the
 * single scheme is written instead.
 */
export function pickGuarded(entries: readonly GuardEntry[], budgetBits: number): GuardEntry | undefined {
  let best: GuardEntry | undefined;
  for (const e of entries)
    if (e.bits <= budgetBits && Number.isFinite(e.heldOutKl) && (!best || e.heldOutKl < best.heldOutKl)) best = e;
  return best;
}

/**
 * The single-scheme forms worth weighing against a plan within `budgetBytes`: per scheme, the GPTQ
 * candidate of most bytes that still fits for every weight (a smaller block of the same scheme is the
 * better single model nearly always, and each form costs two GPTQ/AWQ fits).
 */
export function guardCandidates(
  s: SensitivityResult,
  candidates: readonly Candidate[],
  budgetBytes: number,
): Candidate[] {
  const widest = new Map<string, { c: Candidate; bytes: number }>();
  for (const c of candidates) {
    if (!c.gptq || c.clip || c.scheme === 'fp32') continue;
    const u = uniformPlan(s, c, budgetBytes);
    if (!u) continue;
    const seen = widest.get(c.scheme);
    if (!seen || u.bytes > seen.bytes) widest.set(c.scheme, { c, bytes: u.bytes });
  }
  return [...widest.values()].map((x) => x.c);
}

/** The fp32 reference's outputs on `data` (prepared as every plan's base is), scored by `objective`. */
export async function referenceOutputs(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  exclude?: readonly string[],
  objective: Objective = KL_OBJECTIVE,
): Promise<Reference> {
  return reference(runtime, encodeModel(modelToProto(prepared(bytes, exclude))), data, objective);
}

/** The objective's cost of a model against `ref` (referenceOutputs) on `data`: KL, or the task loss's rise. */
export async function klFromReference(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  ref: Reference,
): Promise<number> {
  return costOf(runtime, bytes, data, ref);
}

/** The mixed model's bytes for a plan, assembled from the candidates' runs as every measurement is. */
export function mixedModelBytes(setup: MixedSetup, plan: MixedPlan): { bytes: Uint8Array; layers: LayerReport[] } {
  return planModel(setup, plan.choice);
}

/** The model written for a plan: refitted (refitModel; default), or assembled as measured. */
export async function writtenModelBytes(
  setup: MixedSetup,
  plan: MixedPlan,
  refit = true,
): Promise<{ bytes: Uint8Array; layers: LayerReport[] }> {
  return refit ? refitModel(setup, plan.choice) : mixedModelBytes(setup, plan);
}

import { OptionError } from '../errors.js';
import { modelFromProto } from '../graph/from-onnx.js';
import type { Model } from '../graph/model.js';
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
import type { LayerReport, WeightOnlyOptions } from '../passes/weight-only/types.js';
import { chooseUnderBudget } from '../quant/knapsack.js';
import type { CalibrationData } from './calibrate.js';
import { createSession, runBatches } from './calibrate.js';
import type { OnnxRuntime } from './runtime.js';

/*
 * Sensitivity analysis and mixed precision under a size budget. For every linear weight the pass
 * would quantize and every candidate scheme, the model with ONLY that weight quantized is run on
 * the calibration data in ONNX Runtime and its output compared with the fp32 model's: the mean
 * KL divergence of the output distributions (softmax over the last axis, per position). Taking
 * those costs as additive over weights, a multiple-choice knapsack (quant/knapsack.ts) picks one
 * scheme per weight under a byte budget, and the mixed model is written by one pass per chosen
 * scheme, each excluding the weights the others take.
 */

/** A candidate: a weight-only scheme at a block size ('fp32' keeps the weight). */
export interface Candidate {
  readonly label: string;
  readonly scheme: SchemeName | 'fp32';
  readonly blockSize?: number | undefined;
}

/** `q4:128` → q4 at block 128; `fp32` keeps the weight. */
export function parseCandidate(text: string): Candidate {
  const [name, block] = text.split(':') as [string, string | undefined];
  if (name === 'fp32') return { label: 'fp32', scheme: 'fp32' };
  if (!isWeightOnlyScheme(name) || name === 'fp16')
    throw new OptionError(
      'QK_UNKNOWN_SCHEME',
      `candidate scheme '${text}' is not a weight-only scheme`,
      '`schemes` takes e.g. q2-asym:64,q4:128,q4:32,q8-block:128,fp32',
      ['schemes'],
    );
  const blockSize = block === undefined ? undefined : checkBlockSize(Number(block));
  return { label: blockSize === undefined ? name : `${name}:${blockSize}`, scheme: name, blockSize };
}

export const DEFAULT_CANDIDATES = ['q2-asym:64', 'q2-asym:32', 'q4:128', 'q4:32', 'q8-block:128', 'fp32'];

export interface WeightCost {
  readonly label: string;
  /** Stored bytes of the weight in this form (true bytes: codes, scales, zero points). */
  readonly bytes: number;
  /** Mean KL(fp32 ‖ this) per output position, nats. */
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
  /** Positions (output rows) the KL is averaged over. */
  readonly positions: number;
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

/** Output logits (first output) on the calibration data, concatenated. */
async function outputs(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
): Promise<{ data: Float32Array; classes: number }> {
  const session = await createSession(runtime, bytes);
  const parts: Float32Array[] = [];
  let classes = 1;
  try {
    const name = session.outputNames[0] as string;
    await runBatches(runtime, session, data, [name], (out) => {
      const t = out[name];
      if (!t || !(t.data instanceof Float32Array)) return;
      classes = t.dims[t.dims.length - 1] as number;
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
  return { data: all, classes };
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

/** Quantizes `model` in place: each weight by its candidate (weights not in `plan` stay fp32). */
export function applyPlan(model: Model, plan: ReadonlyMap<string, Candidate>): LayerReport[] {
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
    const r = quantizeWeights(model, {
      scheme: c.scheme as SchemeName,
      blockSize: c.blockSize,
      exclude: others,
      equalizeNorms: false,
    });
    layers.push(...r.layers.filter((l) => weights.has(l.weight)));
  }
  removeDeadNodes(model.graph);
  return layers;
}

/** Sensitivity of every linear weight of `bytes` to every candidate. */
export async function measureSensitivity(
  runtime: OnnxRuntime,
  bytes: Uint8Array,
  data: CalibrationData,
  candidates: readonly Candidate[],
  options: Pick<WeightOnlyOptions, 'exclude' | 'keepFirstLast'> = {},
  progress?: (done: number, total: number) => void,
): Promise<SensitivityResult> {
  const base = prepared(bytes, options.exclude);
  const ref = await outputs(runtime, encodeModel(modelToProto(base)), data);
  const weights = linearWeights(base, options);
  const result: WeightSensitivity[] = [];
  let done = 0;
  for (const { weight: w, node } of weights) {
    const init = base.graph.initializers.get(w);
    const params = (init?.dims ?? []).reduce((a, b) => a * b, 1);
    const costs: WeightCost[] = [];
    for (const c of candidates) {
      if (c.scheme === 'fp32') {
        costs.push({ label: c.label, bytes: 4 * params, kl: 0 });
        continue;
      }
      const model = prepared(bytes, options.exclude);
      const layers = applyPlan(model, new Map([[w, c]]));
      const layer = layers.find((l) => l.weight === w);
      const q = await outputs(runtime, encodeModel(modelToProto(model)), data);
      costs.push({
        label: c.label,
        bytes: layer && layer.scheme !== 'fp32' ? layer.bytesAfter : 4 * params,
        kl: meanKl(ref.data, q.data, ref.classes),
      });
      progress?.(++done, weights.length * candidates.length);
    }
    result.push({ weight: w, node, params, costs });
  }
  return { weights: result, positions: ref.data.length / ref.classes };
}

export interface MixedPlan {
  readonly choice: Map<string, Candidate>;
  readonly bytes: number;
  readonly params: number;
  /** Σ of the chosen KL costs (the knapsack's objective). */
  readonly predictedKl: number;
}

/** The scheme per weight of least summed KL within `budgetBytes` (of the linear weights). */
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
 * The smallest plan whose summed KL stays within `maxKl`: the least byte budget whose best plan
 * fits, found by bisection (a bigger budget never has a worse best plan). For a language model the
 * expected rise of the cross-entropy is the KL, so a perplexity increase p is maxKl = ln(1 + p).
 */
export function planMixedForLoss(s: SensitivityResult, candidates: readonly Candidate[], maxKl: number): MixedPlan {
  const least = s.weights.reduce((sum, w) => sum + Math.min(...w.costs.map((c) => c.bytes)), 0);
  const most = s.weights.reduce((sum, w) => sum + Math.max(...w.costs.map((c) => c.bytes)), 0);
  let lo = least;
  let hi = most;
  let best = planMixed(s, candidates, most);
  if (best.predictedKl > maxKl)
    throw new OptionError(
      'QK_BAD_OPTION',
      `even the widest candidates lose ${best.predictedKl.toExponential(2)} nats of KL, over the ${maxKl.toExponential(2)} allowed`,
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

/** The mixed model's bytes for a plan (same preparation as the measurements). */
export function mixedModelBytes(
  bytes: Uint8Array,
  plan: MixedPlan,
  options: Pick<WeightOnlyOptions, 'exclude'> = {},
): { bytes: Uint8Array; layers: LayerReport[] } {
  const model = prepared(bytes, options.exclude);
  const layers = applyPlan(model, plan.choice);
  return { bytes: encodeModel(modelToProto(model)), layers };
}

import { modelFromProto } from '../graph/from-onnx.js';
import { memoryInitializer, type GraphNode, type Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { consumers, removeDeadNodes, topologicalOrder, uniqueName } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import type { GptqOptions } from '../quant/gptq.js';
import { equalizeNormScales } from '../passes/activation/smoothquant.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { opsetRaiseNote, settleOpset } from '../passes/opset-floor.js';
import {
  gptqLayer,
  gptqScheme,
  planGptq,
  storedLayout,
  type GptqLayer,
  type GptqPlan,
} from '../passes/weight-only/gptq-handler.js';
import { linearView } from '../passes/weight-only/linear-site.js';
import { quantizeWeights } from '../passes/weight-only/index.js';
import { ResultMap, type Bnb4Key, type Int8Key, type NBitsKey } from '../passes/weight-only/result-key.js';
import type { PrecomputedWeights, WeightOnlyOptions, WeightOnlyReport } from '../passes/weight-only/types.js';
import type { Bnb4Weights } from '../quant/bnb4-quant.js';
import type { NBitsWeights } from '../quant/nbits-quant.js';
import type { SpqrWeights } from '../quant/spqr.js';
import type { SuperBlockWeights } from '../quant/superblock.js';
import { makeTensor } from '../tensor/tensor.js';
import type { CalibrationData, CalibrationProgress } from './calibrate.js';
import { readCalibFiles } from '../node/calib-files.js';
import { nodeRuntime } from '../node/ort-runtime.js';
import { collectHessians } from './hessian.js';
import { checkedCalibration } from './input-check.js';
import { OptionError } from '../errors.js';
import { FLOAT32_SQUARE_LIMIT, overflowingWeight } from '../passes/non-finite.js';

/*
 * GPTQ for the block-quantized weight-only schemes (q4, q4-asym, q8-block, nf4, fp4) when
 * calibration data is given: each linear layer's input statistics H = XᵀX are collected in ONNX
 * Runtime (hessian.ts), its weight quantized by GPTQ (quant/gptq.ts through
 * passes/weight-only/gptq-handler.ts), and the results handed to the ordinary weight-only pass as
 * precomputed weights, which then only rewrites the graph.
 *
 * Sequential by default (the GPTQ paper's and AutoGPTQ's order): layers are taken in stages; a
 * stage is every remaining layer whose input does not depend on a remaining layer, and its inputs
 * are collected on a working copy in which the layers of the earlier stages already hold their
 * quantized (dequantized-to-fp32) weights, so each layer compensates the error of those before
 * it. A tied weight read by several layers gets the sum of their inputs' H.
 */

export interface GptqFlowOptions extends GptqOptions {
  /** Calibration samples per ONNX Runtime run (default 16). */
  readonly calibBatch?: number | undefined;
  readonly progress?: CalibrationProgress | undefined;
  /** Collect each stage's inputs on the partly quantized model (default true); false: one run on fp32. */
  readonly sequential?: boolean | undefined;
}

export interface GptqPrecomputed {
  readonly precomputed: PrecomputedWeights;
  /** Weights quantized by GPTQ. */
  readonly layers: number;
  /** Collections (ONNX Runtime sessions) run. */
  readonly stages: number;
  readonly notes: string[];
}

/** Every value computed, directly or not, from the outputs of `from`. */
function downstreamValues(cons: Map<string, GraphNode[]>, from: Iterable<GraphNode>): Set<string> {
  const seen = new Set<string>();
  const stack: string[] = [];
  for (const n of from) stack.push(...n.outputs);
  while (stack.length > 0) {
    const v = stack.pop() as string;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const c of cons.get(v) ?? []) stack.push(...c.outputs);
  }
  return seen;
}

/** One weight's share of a sequential pass: the layer, the scheme's plan and options it is quantized in. */
interface GptqTask {
  readonly layer: GptqLayer;
  readonly plan: GptqPlan;
  readonly options: WeightOnlyOptions;
}

/** The layers cut into stages: each stage's inputs depend on no layer of its own or a later stage. */
function stagesOf(model: Model, tasks: readonly GptqTask[], sequential: boolean): GptqTask[][] {
  if (!sequential) return tasks.length > 0 ? [[...tasks]] : [];
  const cons = consumers(model.graph);
  const stages: GptqTask[][] = [];
  let remaining = [...tasks];
  while (remaining.length > 0) {
    const after = downstreamValues(
      cons,
      remaining.flatMap((t) => t.layer.sites.map((s) => s.node)),
    );
    let ready = remaining.filter((t) => t.layer.activations.every((a) => !after.has(a)));
    // A weight read again downstream of itself (a shared recurrent layer) never gets ready: take
    // the first remaining layer on its own then.
    if (ready.length === 0) ready = [remaining[0] as GptqTask];
    stages.push(ready);
    remaining = remaining.filter((t) => !ready.includes(t));
  }
  return stages;
}

/** A copy of the model whose nodes and initializer table can be changed without touching `model`. */
function workingCopy(model: Model): { work: Model; nodeOf: Map<GraphNode, GraphNode> } {
  const nodeOf = new Map<GraphNode, GraphNode>();
  const nodes = model.graph.nodes.map((n) => {
    const c = { ...n, inputs: [...n.inputs] };
    nodeOf.set(n, c);
    return c;
  });
  return {
    work: { ...model, graph: { ...model.graph, nodes, initializers: new Map(model.graph.initializers) } },
    nodeOf,
  };
}

/**
 * XᵀX and the layer outputs are float32 in ONNX Runtime: a weight whose products overflow would
 * surface as a matrix that is not positive definite, far from its cause, so it is refused first.
 */
function refuseOverflow(model: Model): void {
  const huge = overflowingWeight(model);
  if (huge)
    throw new OptionError(
      'QK_WEIGHT_OVERFLOW',
      `'${huge.name}' holds ${huge.value}: past ±${FLOAT32_SQUARE_LIMIT.toPrecision(3)} its float32 products overflow, and GPTQ's statistics with them`,
      "fix the model's weights, or quantize without `calib`",
      ['calib'],
    );
}

/**
 * The sequential pass over `tasks` (in execution order): per stage, the inputs collected on the
 * working copy, each layer quantized by GPTQ in its own task's scheme, and its dequantized weight
 * put in the working copy for the stages after it.
 */
async function runGptqTasks(
  model: Model,
  tasks: readonly GptqTask[],
  data: CalibrationData,
  o: GptqFlowOptions,
): Promise<{ precomputed: PrecomputedWeights; stages: number; rows: number; maxDamp: number }> {
  const stages = stagesOf(model, tasks, o.sequential ?? true);
  const { work, nodeOf } = workingCopy(model);
  const nbits = new ResultMap<NBitsKey, NBitsWeights>();
  const bnb4 = new ResultMap<Bnb4Key, Bnb4Weights>();
  const spqr = new ResultMap<NBitsKey, SpqrWeights>();
  const superBlock = new ResultMap<NBitsKey, SuperBlockWeights>();
  const gptq = new Set<string>();
  let rows = 0;
  let maxDamp = 0;
  for (const [si, stage] of stages.entries()) {
    const wanted = new Map<string, number>();
    for (const { layer: l } of stage) for (const a of l.activations) wanted.set(a, l.shape.K);
    const hs = await collectHessians(nodeRuntime, work, wanted, data, {
      batchSize: o.calibBatch,
      progress: o.progress,
      pass: si + 1,
      passes: stages.length,
    });
    for (const { layer: l, plan, options } of stage) {
      const K = l.shape.K;
      const h = new Float64Array(K * K);
      for (const a of l.activations) {
        const part = hs.get(a);
        if (!part) continue;
        for (let i = 0; i < h.length; i++) h[i] = (h[i] as number) + (part.h[i] as number);
        rows = Math.max(rows, part.rows);
      }
      const view = linearView(l.sites[0] as (typeof l.sites)[number]);
      const r = gptqLayer(plan, l, view, h, options, o);
      if (r.kind === 'spqr' && l.key.kind === 'nbits') spqr.set(l.key, r.weights);
      else if (r.kind === 'superBlock' && l.key.kind === 'nbits') superBlock.set(l.key, r.weights);
      else if (r.kind === 'nbits' && l.key.kind === 'nbits') nbits.set(l.key, r.weights);
      else if (r.kind === 'bnb4' && l.key.kind === 'bnb4') bnb4.set(l.key, r.weights);
      gptq.add(l.weight);
      maxDamp = Math.max(maxDamp, r.dampUsed);
      // Later stages see this layer quantized: its sites read the dequantized weight instead.
      const name = uniqueName(work.graph, `${l.weight}_gptq_dequantized`);
      const dims = [...(l.sites[0]?.weight.dims ?? [])];
      work.graph.initializers.set(
        name,
        memoryInitializer(name, makeTensor('float32', dims, storedLayout(r.dequantized, l.shape))),
      );
      for (const s of l.sites) {
        const c = nodeOf.get(s.node);
        if (c) c.inputs[s.slot] = name;
      }
      // The fp32 original stays only while something else reads it (the Gather of a tied embedding).
      if (!work.graph.nodes.some((n) => n.inputs.includes(l.weight))) work.graph.initializers.delete(l.weight);
    }
  }
  return {
    precomputed: { nbits, int8: new ResultMap<Int8Key, never>(), bnb4, spqr, superBlock, gptq },
    stages: stages.length,
    rows,
    maxDamp,
  };
}

/** The note saying how GPTQ ran. */
function gptqNote(layers: number, rows: number, stages: number, maxDamp: number, o: GptqFlowOptions): string {
  const how = [
    (o.sequential ?? true) ? `sequential, ${stages} stages` : 'one pass on the fp32 model',
    `damp ${maxDamp.toPrecision(2)}`,
    o.actOrder ? 'act-order' : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `GPTQ on ${layers} weight(s) from ${rows} calibration tokens per layer (${how})`;
}

/**
 * Norm scales folded (as the pass would), then GPTQ on every eligible MatMul/Gemm weight; the
 * results keyed for the pass. Changes `model` only by the norm-scale folding the pass does anyway.
 */
export async function gptqPrecompute(
  model: Model,
  options: WeightOnlyOptions,
  data: CalibrationData,
  o: GptqFlowOptions = {},
): Promise<GptqPrecomputed> {
  gptqScheme(options); // refuses other schemes before any work
  refuseOverflow(model);
  // The pass folds outlier norm scales into the weights first (passes/weight-only/index.ts); the
  // statistics must be those of the folded model (its second fold finds nothing left to do).
  const eq = options.equalizeNorms === false ? { groups: [] } : equalizeNormScales(model, { exclude: options.exclude });
  const plan = planGptq(model, options);
  const run = await runGptqTasks(
    model,
    plan.layers.map((layer) => ({ layer, plan, options })),
    data,
    o,
  );
  const notes = [...plan.notes];
  if (eq.groups.length > 0)
    notes.push(
      `${eq.groups.length} normalization scale(s) folded into the weights they feed before GPTQ (${eq.groups.map((gr) => gr.foldedInto).join(', ')})`,
    );
  if (plan.layers.length > 0) notes.push(gptqNote(plan.layers.length, run.rows, run.stages, run.maxDamp, o));
  return { precomputed: run.precomputed, layers: plan.layers.length, stages: run.stages, notes };
}

/**
 * One sequential GPTQ pass in which each weight is quantized in its own scheme: `groups` are the
 * schemes' options, each one's `exclude` leaving out the weights it does not take (no weight in
 * two groups). A stage's inputs are collected on the model whose earlier stages hold their own
 * groups' quantized weights, and on whatever `model` already holds elsewhere (weights a
 * data-free quantizer has rewritten stay as written). Norm scales are taken as they are: the
 * caller has equalized them (mixed precision does once, for every plan).
 */
export async function gptqPrecomputeGroups(
  model: Model,
  groups: readonly WeightOnlyOptions[],
  data: CalibrationData,
  o: GptqFlowOptions = {},
): Promise<GptqPrecomputed> {
  for (const g of groups) gptqScheme(g);
  refuseOverflow(model);
  const order = new Map(topologicalOrder(model.graph).map((n, i) => [n, i]));
  const first = (t: GptqTask) => order.get(t.layer.sites[0]?.node as GraphNode) ?? 0;
  const plans = groups.map((options) => ({ options, plan: planGptq(model, options) }));
  const tasks = plans
    .flatMap(({ options, plan }) => plan.layers.map((layer) => ({ layer, plan, options })))
    .sort((a, b) => first(a) - first(b));
  const twice = tasks.find((t, i) => tasks.findIndex((u) => u.layer.weight === t.layer.weight) !== i);
  if (twice) throw new Error(`GPTQ groups: '${twice.layer.weight}' is in two of them`);
  const run = await runGptqTasks(model, tasks, data, o);
  const notes = plans.flatMap((p) => p.plan.notes);
  if (tasks.length > 0) notes.push(gptqNote(tasks.length, run.rows, run.stages, run.maxDamp, o));
  return { precomputed: run.precomputed, layers: tasks.length, stages: run.stages, notes };
}

/**
 * flows/quantize.ts quantizeModel with GPTQ: BN folded, GPTQ run on the calibration data, then
 * the pass (which only rewires the graph), dead values dropped. Rewrites `model` in place.
 */
export async function quantizeModelGptq(
  model: Model,
  options: WeightOnlyOptions,
  data: CalibrationData,
  o: GptqFlowOptions = {},
): Promise<{ model: Model; report: WeightOnlyReport; gptq: GptqPrecomputed }> {
  const folded = foldBatchNorm(model);
  const g = await gptqPrecompute(model, options, data, o);
  const report = quantizeWeights(model, { ...options, precomputed: g.precomputed });
  removeDeadNodes(model.graph);
  const raised = settleOpset(model);
  if (raised) report.notes.push(opsetRaiseNote(raised));
  if (folded > 0)
    report.notes.unshift(
      `${folded} BatchNormalization node${folded === 1 ? '' : 's'} folded into the preceding Conv/Gemm`,
    );
  report.notes.push(...g.notes);
  return { model, report, gptq: g };
}

/** Bytes of a model quantized in memory with GPTQ (tests, the web page's Node twin). */
export async function quantizeModelBytesGptq(
  bytes: Uint8Array,
  options: WeightOnlyOptions,
  data: CalibrationData,
  o: GptqFlowOptions = {},
  label = '<model>',
): Promise<{ bytes: Uint8Array; report: WeightOnlyReport }> {
  const model = modelFromProto(decodeModel(bytes, label), { label });
  const r = await quantizeModelGptq(model, options, data, o);
  return { bytes: encodeModel(modelToProto(r.model)), report: r.report };
}

/** What `quantkit quantize --calib` adds to the weight-only options (flows/quantize.ts quantizeFile). */
export interface GptqFileOptions {
  /** `--calib [name=]x.npy`, as given: turns GPTQ on. */
  readonly calib?: readonly string[] | undefined;
  readonly gptq?: GptqFlowOptions | undefined;
}

/**
 * For the file path: GPTQ's precomputed weights when --calib was given (undefined otherwise), the
 * calibration arrays read as int8-static reads them.
 */
export async function gptqFromCalibFiles(
  model: Model,
  options: WeightOnlyOptions & GptqFileOptions,
): Promise<GptqPrecomputed | undefined> {
  if (!options.calib?.length) return undefined;
  gptqScheme(options);
  const calib = checkedCalibration(
    model,
    readCalibFiles(
      options.calib,
      model.graph.inputs.map((v) => v.name),
    ),
    options.gptq?.calibBatch,
  );
  const r = await gptqPrecompute(model, options, calib.data, options.gptq);
  return { ...r, notes: [...calib.notes, ...r.notes] };
}

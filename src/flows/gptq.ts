import { modelFromProto } from '../graph/from-onnx.js';
import { memoryInitializer, type GraphNode, type Model } from '../graph/model.js';
import { modelToProto } from '../graph/to-onnx.js';
import { consumers, removeDeadNodes, uniqueName } from '../graph/topology.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import type { GptqOptions } from '../quant/gptq.js';
import { equalizeNormScales } from '../passes/activation/smoothquant.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { opsetRaiseNote, settleOpset } from '../passes/opset-floor.js';
import { gptqLayer, gptqScheme, planGptq, storedLayout, type GptqLayer } from '../passes/weight-only/gptq-handler.js';
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

/** The layers cut into stages: each stage's inputs depend on no layer of its own or a later stage. */
function stagesOf(model: Model, layers: readonly GptqLayer[], sequential: boolean): GptqLayer[][] {
  if (!sequential) return layers.length > 0 ? [[...layers]] : [];
  const cons = consumers(model.graph);
  const stages: GptqLayer[][] = [];
  let remaining = [...layers];
  while (remaining.length > 0) {
    const after = downstreamValues(
      cons,
      remaining.flatMap((l) => l.sites.map((s) => s.node)),
    );
    let ready = remaining.filter((l) => l.activations.every((a) => !after.has(a)));
    // A weight read again downstream of itself (a shared recurrent layer) never gets ready: take
    // the first remaining layer on its own then.
    if (ready.length === 0) ready = [remaining[0] as GptqLayer];
    stages.push(ready);
    remaining = remaining.filter((l) => !ready.includes(l));
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
  // XᵀX and the layer outputs are float32 in ONNX Runtime: a weight whose products overflow would
  // surface as a matrix that is not positive definite, far from its cause.
  const huge = overflowingWeight(model);
  if (huge)
    throw new OptionError(
      'QK_WEIGHT_OVERFLOW',
      `'${huge.name}' holds ${huge.value}: past ±${FLOAT32_SQUARE_LIMIT.toPrecision(3)} its float32 products overflow, and GPTQ's statistics with them`,
      "fix the model's weights, or quantize without `calib`",
      ['calib'],
    );
  // The pass folds outlier norm scales into the weights first (passes/weight-only/index.ts); the
  // statistics must be those of the folded model (its second fold finds nothing left to do).
  const eq = options.equalizeNorms === false ? { groups: [] } : equalizeNormScales(model, { exclude: options.exclude });
  const plan = planGptq(model, options);
  const stages = stagesOf(model, plan.layers, o.sequential ?? true);
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
    for (const l of stage) for (const a of l.activations) wanted.set(a, l.shape.K);
    const hs = await collectHessians(nodeRuntime, work, wanted, data, {
      batchSize: o.calibBatch,
      progress: o.progress,
      pass: si + 1,
      passes: stages.length,
    });
    for (const l of stage) {
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
  const notes = [...plan.notes];
  if (eq.groups.length > 0)
    notes.push(
      `${eq.groups.length} normalization scale(s) folded into the weights they feed before GPTQ (${eq.groups.map((gr) => gr.foldedInto).join(', ')})`,
    );
  if (plan.layers.length > 0) {
    const how = [
      (o.sequential ?? true) ? `sequential, ${stages.length} stages` : 'one pass on the fp32 model',
      `damp ${maxDamp.toPrecision(2)}`,
      o.actOrder ? 'act-order' : '',
    ]
      .filter(Boolean)
      .join(', ');
    notes.push(`GPTQ on ${plan.layers.length} weight(s) from ${rows} calibration tokens per layer (${how})`);
  }
  return {
    precomputed: { nbits, int8: new ResultMap<Int8Key, never>(), bnb4, spqr, superBlock, gptq },
    layers: plan.layers.length,
    stages: stages.length,
    notes,
  };
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

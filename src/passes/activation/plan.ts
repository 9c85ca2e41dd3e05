import type { Graph, GraphNode, Model } from '../../graph/model.js';
import { consumers, producers, topologicalOrder } from '../../graph/topology.js';
import { intAttr, loadFloat32 } from './graph-util.js';

/**
 * Which tensors a static int8 model quantizes, by the fusion rules:
 *  - Only tensors that feed integer compute get Q/DQ: the activation inputs of Conv, Gemm and
 *    MatMul. Add/Mul/Softmax/LayerNormalization outputs are never quantized for their own sake
 *    (quantizing every Add/Mul output is what breaks squeeze-excite and attention models).
 *  - Value-preserving ops (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, MaxPool, Identity)
 *    take their input's scale: the range is calibrated once on the chain's source tensor and the
 *    same scale/zero-point initializers are used at every link, so requantizing is exact and ONNX
 *    Runtime can run MaxPool/Reshape on the integers.
 *  - Conv/Gemm followed by Relu: the source is the Relu output, so there is no Q/DQ between them
 *    and the u8 range starts at 0 (ORT then drops the Relu into the QuantizeLinear).
 *  - One Q/DQ pair per tensor, shared by all of its integer consumers (fan-out).
 *  - Outputs of ops with a known, bounded range take that range instead of a calibrated one:
 *    Softmax/Sigmoid [0, 1], Tanh [-1, 1]. A clipping method (entropy, percentile) on attention
 *    probabilities would otherwise cut the few large probabilities that carry the signal (the
 *    mass sits near 0): measured on the char LM, entropy cut Softmax outputs to 0.12 and
 *    perplexity rose by 480 %.
 *  - With `minConvReduction`, a Conv whose reduction (C/group · kernel size) is shorter stays
 *    float: ONNX Runtime's integer conv pads the reduction to its kernel's width and runs the
 *    NHWC reorders besides, so there it is slower than fp32 (the digits CNN's first conv, 1
 *    channel × 3×3: 64 µs as QLinearConv vs 15 µs fp32 at batch 32; keeping it fp32 took the
 *    int8-static model from ~0.9× to ~0.7× of fp32's latency, scripts/measure/model-latency.ts).
 *    Off by default: the full-range saturation measurements (README) quantize that conv.
 *  - Mask-like tensors stay float: a source produced by Add/Sub/Where/Mul with a constant whose
 *    magnitude reaches MASK_CONSTANT (the −1e4 causal mask), or any tensor that also feeds a
 *    Softmax. One u8 range over scores ±25 and a −1e4 mask has a step of ~39 and wipes the scores.
 */
export const VALUE_PRESERVING = new Set([
  'Reshape',
  'Transpose',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'MaxPool',
  'Identity',
]);
export const INTEGER_OPS = new Set(['Conv', 'Gemm', 'MatMul']);
/** The `minConvReduction` that keeps the digits CNN's 1-channel 3×3 conv in fp32 (see above). */
export const FAST_MIN_CONV_REDUCTION = 16;
/** |constant| at or above this marks an additive mask / large offset (masks use −1e4 … −1e9, −inf). */
export const MASK_CONSTANT = 1e3;

export interface StaticSite {
  readonly node: GraphNode;
  /** Input slots read as activations (quantized u8/s8 through Q/DQ). */
  readonly activationSlots: number[];
  /** Slot of the constant weight (quantized s8 per channel), or -1 (MatMul of two activations). */
  readonly weightSlot: number;
  /** Per-channel axis of the weight. */
  readonly weightAxis: number;
}

export interface QuantTensor {
  /** The tensor whose calibrated range this one uses (itself when it is a chain's source). */
  readonly source: string;
}

export interface SkippedSite {
  readonly node: string;
  readonly opType: string;
  readonly reason: string;
}

/** Output ranges fixed by the op's definition. */
export const KNOWN_RANGE: Readonly<Record<string, { lo: number; hi: number }>> = {
  Softmax: { lo: 0, hi: 1 },
  Sigmoid: { lo: 0, hi: 1 },
  Tanh: { lo: -1, hi: 1 },
};

export interface StaticPlan {
  readonly sites: StaticSite[];
  /** Every tensor that gets a Q/DQ pair, with the source of its range. */
  readonly tensors: Map<string, QuantTensor>;
  /** Every range source, in execution order. */
  readonly sources: string[];
  /** Sources whose range is fixed by their producer (KNOWN_RANGE); the rest are calibrated. */
  readonly fixedRanges: Map<string, { lo: number; hi: number }>;
  readonly skipped: SkippedSite[];
}

export interface PlanOptions {
  /** Op types or node names left in fp32 (--exclude). */
  readonly exclude?: readonly string[] | undefined;
  /** Keep the first and last integer-compute node in fp32 (--keep-first-last). */
  readonly keepFirstLast?: boolean | undefined;
  /** Quantize MatMuls whose both inputs are activations (attention scores, probs·V). Default true. */
  readonly activationMatMul?: boolean | undefined;
  /** Convs whose reduction C/group · kernel size is below this stay fp32 (see above). Default 0 (none). */
  readonly minConvReduction?: number | undefined;
}

function weightAxis(node: GraphNode, rank: number): number {
  if (node.opType === 'Conv') return 0;
  if (node.opType === 'Gemm') return intAttr(node, 'transB', 0) === 1 ? 0 : 1;
  return rank - 1; // MatMul: one scale per output column
}

/** Ops through which a constant stays a constant (a mask sliced to the sequence length, cast, …). */
const CONSTANT_CARRIERS = new Set([
  'Slice',
  'Gather',
  'Reshape',
  'Unsqueeze',
  'Squeeze',
  'Expand',
  'Cast',
  'Transpose',
  'Identity',
]);

/** max |c| of a tensor derived from an initializer alone (through CONSTANT_CARRIERS), else 0. */
function constantMagnitude(graph: Graph, name: string, prod: Map<string, GraphNode>, depth = 0): number {
  const init = graph.initializers.get(name);
  if (init) {
    if (init.dtype !== 'float32') return 0;
    const d = loadFloat32(init);
    let m = 0;
    for (let i = 0; i < d.length; i++) {
      const v = Math.abs(d[i] as number);
      if (v > m || v !== v) m = v;
    }
    return m;
  }
  const p = prod.get(name);
  if (!p || depth > 8 || !CONSTANT_CARRIERS.has(p.opType) || !p.inputs[0]) return 0;
  return constantMagnitude(graph, p.inputs[0], prod, depth + 1);
}

/** Why a source tensor must stay float (mask-like, softmax input), or undefined. */
export function maskReason(
  graph: Graph,
  tensor: string,
  prod: Map<string, GraphNode>,
  cons: Map<string, GraphNode[]>,
): string | undefined {
  if ((cons.get(tensor) ?? []).some((n) => n.opType === 'Softmax' || n.opType === 'LogSoftmax'))
    return `'${tensor}' feeds a Softmax (kept in float)`;
  const p = prod.get(tensor);
  if (p && (p.opType === 'Add' || p.opType === 'Sub' || p.opType === 'Where' || p.opType === 'Mul')) {
    for (const i of p.inputs) {
      const m = constantMagnitude(graph, i, prod);
      if (m >= MASK_CONSTANT || m !== m)
        return `'${tensor}' is ${p.opType} with constant '${i}' of magnitude ${m} (a mask or large offset; kept in float)`;
    }
  }
  return undefined;
}

/** Follows value-preserving producers up to the source; returns [source, ...links down to tensor]. */
function chainTo(tensor: string, prod: Map<string, GraphNode>): string[] {
  const chain = [tensor];
  let t = tensor;
  for (;;) {
    const p = prod.get(t);
    if (!p || p.domain !== '' || !VALUE_PRESERVING.has(p.opType)) break;
    const input = p.inputs[0];
    if (!input) break;
    chain.unshift(input);
    t = input;
  }
  return chain;
}

function isFloatActivation(graph: Graph, tensor: string): boolean {
  if (graph.initializers.has(tensor)) return false;
  const gi = graph.inputs.find((v) => v.name === tensor);
  if (gi) return gi.dtype === 'float32';
  const vi = graph.valueInfo.get(tensor);
  return !vi?.dtype || vi.dtype === 'float32';
}

export function planStaticQuant(model: Model, opts: PlanOptions = {}): StaticPlan {
  const g = model.graph;
  const prod = producers(g);
  const cons = consumers(g);
  const exclude = new Set(opts.exclude ?? []);
  const skipped: SkippedSite[] = [];
  const candidates: StaticSite[] = [];

  for (const n of topologicalOrder(g)) {
    if (n.domain !== '' || !INTEGER_OPS.has(n.opType)) continue;
    const skip = (reason: string) => skipped.push({ node: n.name, opType: n.opType, reason });
    if (exclude.has(n.opType) || exclude.has(n.name)) {
      skip('excluded (`exclude`)');
      continue;
    }
    const w = g.initializers.get(n.inputs[1] ?? '');
    if (n.opType === 'Gemm' && intAttr(n, 'transA', 0) !== 0) {
      skip('Gemm with transA');
      continue;
    }
    if (g.initializers.has(n.inputs[0] ?? '')) {
      skip('constant on the activation side');
      continue;
    }
    if (w) {
      if (w.dtype !== 'float32') {
        skip(`weight '${w.name}' is ${w.dtype}`);
        continue;
      }
      if (w.dims.length < 2) {
        skip(`weight '${w.name}' of rank ${w.dims.length}`);
        continue;
      }
      const reduction = w.dims.slice(1).reduce((p, d) => p * d, 1);
      if (n.opType === 'Conv' && reduction < (opts.minConvReduction ?? 0)) {
        skip(`reduction of ${reduction} (C/group · kernel) is too short for ONNX Runtime's integer conv to beat fp32`);
        continue;
      }
      candidates.push({ node: n, activationSlots: [0], weightSlot: 1, weightAxis: weightAxis(n, w.dims.length) });
    } else if (n.opType === 'MatMul') {
      if (opts.activationMatMul === false) {
        skip('MatMul of two activations (activationMatMul off)');
        continue;
      }
      candidates.push({ node: n, activationSlots: [0, 1], weightSlot: -1, weightAxis: -1 });
    } else {
      skip('weight is not a constant initializer');
    }
  }

  if (opts.keepFirstLast && candidates.length > 0) {
    const first = candidates.shift() as StaticSite;
    skipped.push({
      node: first.node.name,
      opType: first.node.opType,
      reason: 'first layer kept in fp32 (`keepFirstLast`)',
    });
    const last = candidates.pop();
    if (last)
      skipped.push({
        node: last.node.name,
        opType: last.node.opType,
        reason: 'last layer kept in fp32 (`keepFirstLast`)',
      });
  }

  const sites: StaticSite[] = [];
  const tensors = new Map<string, QuantTensor>();
  const sources: string[] = [];
  for (const site of candidates) {
    const chains = site.activationSlots.map((s) => chainTo(site.node.inputs[s] as string, prod));
    let reason: string | undefined;
    for (const chain of chains) {
      if (!chain.every((t) => isFloatActivation(g, t)))
        reason ??= `input '${chain[chain.length - 1]}' is not a float activation`;
      for (const t of chain) reason ??= maskReason(g, t, prod, cons);
    }
    if (reason) {
      skipped.push({ node: site.node.name, opType: site.node.opType, reason });
      continue;
    }
    for (const chain of chains) {
      const source = chain[0] as string;
      if (!sources.includes(source)) sources.push(source);
      for (const t of chain) if (!tensors.has(t)) tensors.set(t, { source });
    }
    sites.push(site);
  }
  const fixedRanges = new Map<string, { lo: number; hi: number }>();
  for (const s of sources) {
    const p = prod.get(s);
    const r = p && p.domain === '' ? KNOWN_RANGE[p.opType] : undefined;
    if (r) fixedRanges.set(s, r);
  }
  return { sites, tensors, sources, skipped, fixedRanges };
}

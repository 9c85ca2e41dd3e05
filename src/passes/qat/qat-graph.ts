import type { GraphNode, Model } from '../../graph/model.js';
import { consumers, removeDeadNodes } from '../../graph/topology.js';
import {
  lsqActivationQuantizer,
  lsqWeightQuantizer,
  pactActivationQuantizer,
  steActivationQuantizer,
  steWeightQuantizer,
  type ActivationQuantizer,
  type LsqInit,
  type QatMethod,
  type QuantMode,
  type WeightCodes,
  type WeightQuantizer,
} from '../../train/quantizers.js';
import { tf } from '../../train/tf.js';
import { insertStaticQdq, weightQmax, type Range, type StaticReport, type WeightBits } from '../activation/qdq.js';
import { planStaticQuant, VALUE_PRESERVING, type StaticPlan } from '../activation/plan.js';
import type { Target } from '../activation/weight-form.js';
import { foldBatchNorm } from '../fold-batchnorm.js';
import { opsetRaiseNote, raiseOpset, settleOpset } from '../opset-floor.js';
import { buildTrainable, writeBack, type TrainableGraph } from '../trainable/build.js';

/*
 * Quantization-aware training wired onto a model: the int8-static plan (passes/activation/plan.ts)
 * says which tensors get Q/DQ and which weights get per-channel codes; this puts a fake quantizer
 * at each of those reads of the trainable graph, so training sees exactly the rounding the
 * exported QDQ model has, and exports through the same writer (insertStaticQdq) with the trained
 * codes and learned activation parameters.
 *
 * BatchNormalization is folded into the preceding Conv/Gemm before training (passes/fold-
 * batchnorm.ts) and the folded weight is what is fake-quantized and trained: it is the weight the
 * exported model stores, so the training grid and the deployed grid are one (Krishnamoorthi 2018
 * §3.2: quantizing the unfolded weight trains a grid that folding then moves). The running
 * statistics are frozen in the fold; QAT here fine-tunes a trained model with small batches
 * (32), whose batch statistics would be noisier than the running ones.
 */

export interface QatGraphOptions {
  readonly bits: WeightBits;
  readonly method: QatMethod;
  /**
   * The CPU the model is for: 8-bit weights on 'any' train on the 7-bit grid [−64, 64]
   * (weight-form.ts: u8×s8 kernels without VNNI saturate on full-range codes); vnni/arm/wasm
   * train on [−127, 127]. 4 and 3 bits run as float compute behind DequantizeLinear.
   */
  readonly target?: Target | undefined;
  /** EMA momentum of observed activation ranges (default 0.9). */
  readonly momentum?: number | undefined;
  /** Where LSQ's weight steps start (default 'max', the PTQ grid). */
  readonly lsqInit?: LsqInit | undefined;
  /** PACT's L2 coefficient on α (default 1e-4). */
  readonly pactDecay?: number | undefined;
  readonly exclude?: readonly string[] | undefined;
  readonly label?: string | undefined;
}

export interface QatExport {
  readonly report: StaticReport;
  readonly notes: string[];
}

export interface QatGraph {
  readonly model: Model;
  readonly trainable: TrainableGraph;
  readonly plan: StaticPlan;
  mode: QuantMode;
  /** Weights and learned quantizer parameters. */
  variables(): tf.Variable[];
  /** The model's own weights (biases included). */
  weightVariables(): tf.Variable[];
  /** Learned quantizer parameters (PACT's α, LSQ's steps); empty before `endObservation` for activations. */
  quantizerVariables(): tf.Variable[];
  /** The first graph output (logits) for `feeds`. */
  forward(feeds: Readonly<Record<string, tf.Tensor>>): tf.Tensor;
  penalty(): tf.Scalar | undefined;
  /** Ends calibration (PACT/LSQ parameters start from the observed ranges). */
  endObservation(): void;
  /** Writes the trained weights back and rewrites the model into its QDQ form (in place). */
  exportQdq(): QatExport;
  dispose(): void;
}

/** Largest weight code trained for `bits` on `target`. */
export function trainedQmax(bits: WeightBits, target: Target): number {
  return bits === 8 && target === 'any' ? 64 : weightQmax(bits);
}

/** Which (node, input slot) reads which planned tensor, as the QDQ writer rewires them. */
function activationReads(model: Model, plan: StaticPlan): Map<GraphNode, Map<number, string>> {
  const cons = consumers(model.graph);
  const sites = new Map(plan.sites.map((s) => [s.node, s]));
  const reads = new Map<GraphNode, Map<number, string>>();
  for (const t of plan.tensors.keys()) {
    for (const n of cons.get(t) ?? []) {
      const site = sites.get(n);
      const slots = site
        ? site.activationSlots.filter((s) => n.inputs[s] === t)
        : VALUE_PRESERVING.has(n.opType) && n.inputs[0] === t && plan.tensors.has(n.outputs[0] ?? '')
          ? [0]
          : [];
      for (const slot of slots) {
        let m = reads.get(n);
        if (!m) reads.set(n, (m = new Map()));
        m.set(slot, t);
      }
    }
  }
  return reads;
}

export function prepareQat(model: Model, o: QatGraphOptions): QatGraph {
  const notes: string[] = [];
  const raised = raiseOpset(model, { opset: 13, what: 'per-axis QuantizeLinear/DequantizeLinear' });
  if (raised) notes.push(opsetRaiseNote(raised));
  const folded = foldBatchNorm(model);
  if (folded > 0) notes.push(`${folded} BatchNormalization node(s) folded into the preceding Conv/Gemm for training`);
  const plan = planStaticQuant(model, { exclude: o.exclude });
  const trainable = buildTrainable(model, {}, o.label);
  const target = o.target ?? 'any';
  const qmax = trainedQmax(o.bits, target);
  const momentum = o.momentum ?? 0.9;

  const weightQ = new Map<string, WeightQuantizer>();
  const weightSlots = new Map<GraphNode, { slot: number; name: string }>();
  for (const site of plan.sites) {
    if (site.weightSlot < 0) continue;
    const name = site.node.inputs[site.weightSlot] as string;
    const v = trainable.variables.get(name);
    if (!v) continue;
    weightSlots.set(site.node, { slot: site.weightSlot, name });
    if (weightQ.has(name)) continue;
    const spec = { dims: v.shape, axis: site.weightAxis, qmax };
    weightQ.set(
      name,
      o.method === 'lsq' ? lsqWeightQuantizer(spec, v, name, o.lsqInit ?? 'max') : steWeightQuantizer(spec),
    );
  }

  const actQ = new Map<string, ActivationQuantizer>();
  for (const source of plan.sources) {
    const spec = { fixed: plan.fixedRanges.get(source), momentum, name: source };
    actQ.set(
      source,
      o.method === 'pact'
        ? pactActivationQuantizer({ ...spec, decay: o.pactDecay ?? 1e-4 })
        : o.method === 'lsq'
          ? lsqActivationQuantizer(spec)
          : steActivationQuantizer(spec),
    );
  }
  const reads = activationReads(model, plan);

  const g: QatGraph = {
    model,
    trainable,
    plan,
    mode: 'observe',
    variables: () => [...g.weightVariables(), ...g.quantizerVariables()],
    weightVariables: () => [...trainable.variables.values()],
    quantizerVariables: () => [
      ...[...weightQ.values()].flatMap((q) => q.variables),
      ...[...actQ.values()].flatMap((q) => q.variables),
    ],
    forward(feeds) {
      // One fake-quantized value per tensor and forward pass, shared by every reader (fan-out).
      const cache = new Map<string, tf.Tensor>();
      const out = trainable.forward(feeds, {
        read(node, slot, name, value) {
          const w = weightSlots.get(node);
          if (w && w.slot === slot && w.name === name) {
            if (g.mode === 'observe') return value;
            let q = cache.get(name);
            if (!q) cache.set(name, (q = (weightQ.get(name) as WeightQuantizer).apply(value)));
            return q;
          }
          const tensor = reads.get(node)?.get(slot);
          if (tensor === undefined) return value;
          let q = cache.get(tensor);
          if (!q) {
            const source = (plan.tensors.get(tensor) as { source: string }).source;
            const quantizer = actQ.get(source) as ActivationQuantizer;
            // Only the source's own values move its range; the links of its chain reuse its grid.
            const mode = tensor === source ? g.mode : g.mode === 'observe' ? 'observe' : 'eval';
            q = mode === 'observe' && tensor !== source ? value : quantizer.apply(value, mode);
            cache.set(tensor, q);
          }
          return q;
        },
      });
      return out.values().next().value as tf.Tensor;
    },
    penalty() {
      const terms = [...actQ.values()].flatMap((q) => (q.penalty ? [q.penalty()] : []));
      return terms.length > 0 ? (tf.addN(terms) as tf.Scalar) : undefined;
    },
    endObservation() {
      for (const q of actQ.values()) q.endObservation();
    },
    exportQdq() {
      const codes = new Map<string, WeightCodes>();
      for (const [name, q] of weightQ) codes.set(name, q.codes(trainable.variables.get(name) as tf.Variable));
      const ranges = new Map<string, Range>();
      const params = new Map<string, { scale: number; zeroPoint: number }>();
      for (const [source, q] of actQ) {
        const p = q.params();
        ranges.set(source, { lo: p.lo, hi: p.hi });
        params.set(source, { scale: p.scale, zeroPoint: p.zeroPoint });
      }
      writeBack(trainable);
      const report = insertStaticQdq(model, plan, ranges, {
        activationType: 'uint8',
        target,
        weightBits: o.bits,
        weightCodes: codes,
        activationParams: params,
      });
      removeDeadNodes(model.graph);
      const settled = settleOpset(model);
      if (settled) notes.push(opsetRaiseNote(settled));
      return { report, notes };
    },
    dispose() {
      trainable.dispose();
      tf.dispose([
        ...[...weightQ.values()].flatMap((q) => q.variables),
        ...[...actQ.values()].flatMap((q) => q.variables),
      ]);
    },
  };
  return g;
}

import type { Model } from '../../graph/model.js';
import { consumers, topologicalOrder } from '../../graph/topology.js';
import { paramsFromRange } from '../../quant/affine.js';
import { affineParams, quantizeAffine } from '../../quant/affine.js';
import { quantizeWeightPerChannel } from '../../quant/int8-quant.js';
import { blockShapeFor, makeLayout } from '../../quant/layout.js';
import { blockRanges } from '../../quant/range.js';
import { floatAttr, GraphEditor, loadFloat32, rewireInput } from './graph-util.js';
import { VALUE_PRESERVING, type SkippedSite, type StaticPlan } from './plan.js';
import {
  DEFAULT_TARGET,
  type Target,
  type WeightForm,
  weightFormFor,
  type WeightFormReport,
  weightFormReport,
} from './weight-form.js';

export interface Range {
  readonly lo: number;
  readonly hi: number;
}

export interface QdqOptions {
  /** 'uint8' asymmetric (default, ORT's fast u8×s8 path) or 'int8' symmetric activations. */
  readonly activationType?: 'uint8' | 'int8' | undefined;
  /** The CPU the model is for (weight-form.ts); default 'any': weights no u8×s8 kernel saturates on. */
  readonly target?: Target | undefined;
  /** Overrides the target's weight form (measurements compare the forms). */
  readonly weightForm?: WeightForm | undefined;
  /**
   * Weight bits: 8 (int8, default), 4 (int4 [−7, 7]) or 3 (levels [−3, 3] in int4 storage); 4 and
   * 3 are written as opset-21 int4 DequantizeLinear per channel, which ORT runs as float compute.
   */
  readonly weightBits?: WeightBits | undefined;
  /** Codes and scales made elsewhere (QAT's trained grid), used as given for these weights. */
  readonly weightCodes?: ReadonlyMap<string, { codes: Int8Array; scales: Float32Array }> | undefined;
  /** Scale and zero point by range source (QAT's learned ones), used instead of those of `ranges`. */
  readonly activationParams?: ReadonlyMap<string, { scale: number; zeroPoint: number }> | undefined;
}

export type WeightBits = 8 | 4 | 3;

/** Largest code of the symmetric narrow weight grid of `bits`. */
export function weightQmax(bits: WeightBits): number {
  return 2 ** (bits - 1) - 1;
}

/** Per-channel symmetric codes in [−qmax, qmax], scale = max|w| / qmax (an all-zero channel: 1). */
export function quantizeWeightBits(
  data: Float32Array,
  dims: readonly number[],
  axis: number,
  name: string,
  bits: WeightBits,
): { codes: Int8Array; scales: Float32Array } {
  const qmax = weightQmax(bits);
  const q = { qmin: -qmax, qmax, symmetric: true };
  const layout = makeLayout(dims, blockShapeFor(dims, { axis }));
  const r = blockRanges(data, layout, { kind: 'absmax' }, q, 'error', name);
  const params = affineParams(r.lo, r.hi, q);
  const codes = quantizeAffine(data, layout, params, new Int8Array(data.length), { name }) as Int8Array;
  return { codes, scales: params.scale };
}

export interface QuantizedTensorReport {
  name: string;
  source: string;
  lo: number;
  hi: number;
  scale: number;
  zeroPoint: number;
}

export interface StaticReport {
  quantizedNodes: { node: string; opType: string; weight: string | null; bias: string | null }[];
  skipped: SkippedSite[];
  tensors: QuantizedTensorReport[];
  notes: string[];
  weights: WeightFormReport;
}

/** ONNX Runtime's quantizer names its Q/DQ outputs this way; `compare --per-layer` relies on it. */
export const Q_SUFFIX = '_QuantizeLinear_Output';
export const DQ_SUFFIX = '_DequantizeLinear_Output';

const INT32_MAX = 2147483647;

function activationParams(r: Range, type: 'uint8' | 'int8') {
  return type === 'uint8'
    ? paramsFromRange(r.lo, r.hi, { qmin: 0, qmax: 255, symmetric: false })
    : paramsFromRange(r.lo, r.hi, { qmin: -128, qmax: 127, symmetric: true });
}

/**
 * Writes the QDQ form of a plan (see plan.ts for which tensors and why):
 *   activations  QuantizeLinear → DequantizeLinear with one scalar scale/zero point per source,
 *                u8 asymmetric by default (s8 symmetric as an option)
 *   weights      s8 per-channel symmetric behind DequantizeLinear(axis), in the target's weight
 *                form (pair-safe by default, weight-form.ts)
 *   bias         (Conv, Gemm) int32 with scale s_x·s_w[c] and zero point 0 behind
 *                DequantizeLinear(axis=0) — the form ORT folds into QLinearConv/QGemm
 * Rewrites `model` in place. `ranges` holds a calibrated range for every plan source.
 */
export function insertStaticQdq(
  model: Model,
  plan: StaticPlan,
  ranges: Map<string, Range>,
  opts: QdqOptions = {},
): StaticReport {
  const g = model.graph;
  const ed = new GraphEditor(g);
  const type = opts.activationType ?? 'uint8';
  const notes: string[] = [];
  const cons = consumers(g);

  // One scale / zero-point pair per source.
  const sourceParams = new Map<string, { scale: string; zp: string; s: number; z: number }>();
  const tensorsReport: QuantizedTensorReport[] = [];
  for (const source of plan.sources) {
    const r = ranges.get(source) ?? { lo: 0, hi: 0 };
    const p = opts.activationParams?.get(source) ?? activationParams(r, type);
    sourceParams.set(source, {
      scale: ed.constant(`${source}_scale`, 'float32', [], Float32Array.of(p.scale)),
      zp: ed.constant(
        `${source}_zero_point`,
        type,
        [],
        type === 'uint8' ? Uint8Array.of(p.zeroPoint) : Int8Array.of(p.zeroPoint),
      ),
      s: p.scale,
      z: p.zeroPoint,
    });
  }

  // Q/DQ per planned tensor; rewire only the integer sites and the chain links that read it.
  const siteNodes = new Set(plan.sites.map((s) => s.node));
  // The float tensor each site reads in slot 0, before rewiring (its scale is the bias's s_x).
  const firstInput = new Map(plan.sites.map((s) => [s.node, s.node.inputs[0] as string]));
  for (const [t, { source }] of plan.tensors) {
    const sp = sourceParams.get(source);
    if (!sp) continue;
    const r = ranges.get(source) ?? { lo: 0, hi: 0 };
    tensorsReport.push({ name: t, source, lo: r.lo, hi: r.hi, scale: sp.s, zeroPoint: sp.z });
    const q = ed.name(`${t}${Q_SUFFIX}`);
    const dq = ed.name(`${t}${DQ_SUFFIX}`);
    const readers = (cons.get(t) ?? []).filter(
      (n) =>
        siteNodes.has(n) ||
        (VALUE_PRESERVING.has(n.opType) && n.inputs[0] === t && plan.tensors.has(n.outputs[0] ?? '')),
    );
    if (readers.length === 0) continue;
    ed.node('QuantizeLinear', [t, sp.scale, sp.zp], [q]);
    ed.node('DequantizeLinear', [q, sp.scale, sp.zp], [dq]);
    for (const n of readers) {
      if (siteNodes.has(n)) {
        // A site reads the DQ output in its activation slots only (not a weight slot).
        const site = plan.sites.find((s) => s.node === n);
        for (const slot of site?.activationSlots ?? []) if (n.inputs[slot] === t) n.inputs[slot] = dq;
      } else {
        rewireInput(n, t, dq);
      }
    }
  }

  // Weights and biases.
  const weightDq = new Map<string, { dq: string; scales: Float32Array }>();
  const target = opts.target ?? DEFAULT_TARGET;
  const form = opts.weightForm ?? weightFormFor(target);
  const bits = opts.weightBits ?? 8;
  let channelsTotal = 0;
  let reducedTotal = 0;
  const quantizedNodes: StaticReport['quantizedNodes'] = [];
  for (const site of plan.sites) {
    const n = site.node;
    if (site.weightSlot < 0) {
      quantizedNodes.push({ node: n.name, opType: n.opType, weight: null, bias: null });
      continue;
    }
    const wName = n.inputs[site.weightSlot] as string;
    let w = weightDq.get(wName);
    if (!w) {
      const init = g.initializers.get(wName);
      if (!init) continue;
      const given = opts.weightCodes?.get(wName);
      const { codes, scales, reducedChannels } = given
        ? { ...given, reducedChannels: 0 }
        : bits === 8
          ? quantizeWeightPerChannel(loadFloat32(init), init.dims, site.weightAxis, wName, form)
          : { ...quantizeWeightBits(loadFloat32(init), init.dims, site.weightAxis, wName, bits), reducedChannels: 0 };
      const channels = scales.length;
      channelsTotal += channels;
      reducedTotal += reducedChannels;
      const codeType = bits === 8 ? 'int8' : 'int4';
      const qName = ed.constant(`${wName}_quantized`, codeType, init.dims, codes);
      const sName = ed.constant(`${wName}_scale`, 'float32', [channels], scales);
      const zName = ed.constant(`${wName}_zero_point`, codeType, [channels], new Int8Array(channels));
      const dq = ed.name(`${wName}${DQ_SUFFIX}`);
      ed.node('DequantizeLinear', [qName, sName, zName], [dq], { axis: site.weightAxis });
      w = { dq, scales };
      weightDq.set(wName, w);
    }
    n.inputs[site.weightSlot] = w.dq;

    // Bias: int32 with scale s_x · s_w[c] (Conv, and Gemm with alpha = beta = 1).
    let biasName: string | null = null;
    const bName = n.inputs[2];
    const bInit = bName ? g.initializers.get(bName) : undefined;
    const gemmPlain = n.opType !== 'Gemm' || (floatAttr(n, 'alpha', 1) === 1 && floatAttr(n, 'beta', 1) === 1);
    const xSource = plan.tensors.get(firstInput.get(n) ?? '')?.source;
    const xs = xSource ? sourceParams.get(xSource)?.s : undefined;
    if (
      bName &&
      bInit &&
      bInit.dtype === 'float32' &&
      bInit.dims.length === 1 &&
      bInit.dims[0] === w.scales.length &&
      gemmPlain &&
      xs !== undefined
    ) {
      const b = loadFloat32(bInit);
      const c = w.scales.length;
      const q = new Int32Array(c);
      const bs = new Float32Array(c);
      let clamped = 0;
      for (let k = 0; k < c; k++) {
        const s = Math.fround(xs * (w.scales[k] as number));
        bs[k] = s;
        let v = Math.round((b[k] as number) / s);
        if (v - (b[k] as number) / s === 0.5 && v % 2 !== 0) v -= 1;
        if (v > INT32_MAX || v < -INT32_MAX) {
          v = Math.max(-INT32_MAX, Math.min(INT32_MAX, v));
          clamped++;
        }
        q[k] = v;
      }
      if (clamped > 0) notes.push(`bias '${bName}': ${clamped} value(s) clamped to int32 (tiny s_x·s_w)`);
      const qName = ed.constant(`${bName}_quantized`, 'int32', [c], q);
      const sName = ed.constant(`${bName}_scale`, 'float32', [c], bs);
      const zName = ed.constant(`${bName}_zero_point`, 'int32', [c], new Int32Array(c));
      const dq = ed.name(`${bName}${DQ_SUFFIX}`);
      ed.node('DequantizeLinear', [qName, sName, zName], [dq], { axis: 0 });
      n.inputs[2] = dq;
      biasName = bName;
    }
    quantizedNodes.push({ node: n.name, opType: n.opType, weight: wName, bias: biasName });
  }

  g.nodes = topologicalOrder(g);
  dropUnreadInitializers(model);
  return {
    quantizedNodes,
    skipped: plan.skipped,
    tensors: tensorsReport,
    notes,
    weights: weightsReport(form, target, channelsTotal, reducedTotal, bits, opts.weightCodes !== undefined),
  };
}

function weightsReport(
  form: WeightForm,
  target: Target,
  channels: number,
  reduced: number,
  bits: WeightBits,
  given: boolean,
): WeightFormReport {
  const report = weightFormReport(form, target, channels, reduced);
  if (bits === 8 && !given) return report;
  const grid = `[−${weightQmax(bits)}, ${weightQmax(bits)}]`;
  const storage = bits === 8 ? 'int8' : 'int4 (opset-21 DequantizeLinear, per channel)';
  return {
    ...report,
    reason: `${bits}-bit per-channel symmetric weights ${grid} in ${storage}${given ? ', codes and scales from training' : ''}`,
  };
}

/** Removes initializers no node reads and no graph output names (the replaced fp32 weights). */
export function dropUnreadInitializers(model: Model): void {
  const g = model.graph;
  const read = new Set<string>(g.outputs.map((v) => v.name));
  for (const n of g.nodes) for (const i of n.inputs) read.add(i);
  for (const name of [...g.initializers.keys()]) if (!read.has(name)) g.initializers.delete(name);
}

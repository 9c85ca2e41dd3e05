import { QuantkitError } from '../../errors.js';
import type { GraphNode, Model } from '../../graph/model.js';
import { topologicalOrder } from '../../graph/topology.js';
import {
  quantizeWeightPerChannel,
  quantizeWeightPerChannelU8,
  quantizeWeightPerTensor,
} from '../../quant/int8-quant.js';
import { floatAttr, GraphEditor, intAttr, loadFloat32 } from './graph-util.js';
import { opsetRaiseNote, settleOpset } from '../opset-floor.js';
import { dropUnreadInitializers } from './qdq.js';
import { equalizeNormScales } from './smoothquant.js';
import {
  DEFAULT_TARGET,
  type Target,
  type WeightForm,
  weightFormFor,
  type WeightFormReport,
  weightFormReport,
} from './weight-form.js';

/**
 * int8-dynamic: weights quantized ahead (s8 per output channel, symmetric, in the target's weight
 * form: pair-safe by default, weight-form.ts);
 * activations quantized at run time, so no calibration. Graph forms:
 *   'integer'  DynamicQuantizeLinear(x) → (x_q u8, s_x, z_x), one per activation tensor however
 *              many MatMuls read it; MatMulInteger(x_q, W_q, z_x, 0) or ConvInteger → int32;
 *              Cast to float; Mul by s_x·s_w (per column / per output channel). ONNX Runtime fuses
 *              this chain into its DynamicQuantizeMatMul kernel (u8 × s8, the fast path).
 *   'contrib'  com.microsoft DynamicQuantizeMatMul(x, W_q, s_w, 0) for MatMul directly.
 *   perToken   MatMul only: one s8 symmetric scale per row (token) of x, computed in the graph
 *              (ReduceMax |x| over the last axis / 127, Round, Cast to int8), MatMulInteger
 *              s8 × s8, then Mul by s_row and by s_w. ONNX's MatMulInteger takes a per-tensor
 *              activation zero point only (ORT rejects a per-row one), hence symmetric.
 * Gemm (transA = 0) is handled as a MatMul plus an Add of its bias; Conv (only with conv: true)
 * as ConvInteger (kernel shape and attributes kept) plus Mul and the bias Add over the channel axis.
 * Default form: 'integer' — measured against 'contrib' in bench/int8.bench.ts (ORT fuses the
 * integer chain into the same DynamicQuantizeMatMul kernel, so they run alike), and it is plain
 * ONNX that any runtime can load.
 */
export interface DynamicOptions {
  readonly exclude?: readonly string[] | undefined;
  readonly keepFirstLast?: boolean | undefined;
  readonly form?: 'integer' | 'contrib' | undefined;
  readonly perToken?: boolean | undefined;
  /**
   * Also rewrite Conv as ConvInteger. Default false: ONNX Runtime 1.30's ConvInteger is a slow
   * reference kernel (bench/int8.bench.ts: the digits CNN ran 11× slower than fp32 with it), and
   * static QDQ (QLinearConv) is the fast path for convolutions.
   */
  readonly conv?: boolean | undefined;
  /** The CPU the model is for (weight-form.ts); default 'any': weights no u8×s8 kernel saturates on. */
  readonly target?: Target | undefined;
  /** Overrides the target's weight form (measurements compare the forms). */
  readonly weightForm?: WeightForm | undefined;
  /**
   * MatMul weights as s8 symmetric (default, in the target's weight form) or u8 asymmetric per
   * output channel with a zero point each (quant/int8-quant.ts quantizeWeightPerChannelU8): the
   * QUInt8 weights of ONNX Runtime's own dynamic quantizer, which transformers.js's `uint8` files
   * hold. u8 × u8 does not saturate on any CPU. Not with `perToken` (s8 activations).
   */
  readonly weightType?: 'int8' | 'uint8' | undefined;
  /**
   * 'tensor': one s8 scale per MatMul weight (stored per column, all equal), full range or
   * seven-bit by `weightForm` — the form of ONNX Runtime's quantizer without `per_channel`,
   * kept to measure the older recipe against. Default 'channel'.
   */
  readonly weightGranularity?: 'channel' | 'tensor' | undefined;
}

export interface DynamicReport {
  form: string;
  quantizedNodes: { node: string; opType: string; weight: string }[];
  skipped: { node: string; opType: string; reason: string }[];
  notes: string[];
  weights: WeightFormReport;
}

export const DEFAULT_DYNAMIC_FORM = 'integer' as const;

interface Site {
  node: GraphNode;
  weight: string;
  dims: readonly number[];
}

function findSites(model: Model, opts: DynamicOptions, skipped: DynamicReport['skipped']): Site[] {
  const g = model.graph;
  const exclude = new Set(opts.exclude ?? []);
  const sites: Site[] = [];
  for (const n of topologicalOrder(g)) {
    if (n.domain !== '' || !['MatMul', 'Gemm', 'Conv'].includes(n.opType)) continue;
    const skip = (reason: string) => skipped.push({ node: n.name, opType: n.opType, reason });
    if (exclude.has(n.opType) || exclude.has(n.name)) {
      skip('excluded (`exclude`)');
      continue;
    }
    const w = g.initializers.get(n.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32') {
      skip('weight is not an fp32 initializer');
      continue;
    }
    if (g.initializers.has(n.inputs[0] ?? '')) {
      skip('constant on the activation side');
      continue;
    }
    if (n.opType === 'Conv' && opts.conv !== true) {
      skip("Conv kept in fp32 (ORT's ConvInteger is slower than fp32 Conv; use int8-static for convolutions)");
      continue;
    }
    if (n.opType === 'Conv' && w.dims.length !== 4) {
      skip(`Conv weight of rank ${w.dims.length} (2-D convolutions only)`);
      continue;
    }
    if (n.opType !== 'Conv' && w.dims.length !== 2) {
      skip(`weight of rank ${w.dims.length}`);
      continue;
    }
    if (
      n.opType === 'Gemm' &&
      (intAttr(n, 'transA', 0) !== 0 || floatAttr(n, 'alpha', 1) !== 1 || floatAttr(n, 'beta', 1) !== 1)
    ) {
      skip('Gemm with transA or alpha/beta ≠ 1');
      continue;
    }
    sites.push({ node: n, weight: w.name, dims: w.dims });
  }
  if (opts.keepFirstLast && sites.length > 0) {
    for (const s of [sites.shift(), sites.pop()])
      if (s) skipped.push({ node: s.node.name, opType: s.node.opType, reason: 'kept in fp32 (`keepFirstLast`)' });
  }
  return sites;
}

/** W as [K, N] for a MatMul or Gemm site (Gemm with transB stores [N, K]). */
function matmulWeight(model: Model, site: Site): { data: Float32Array; K: number; N: number } {
  const init = model.graph.initializers.get(site.weight);
  const w = loadFloat32(init as NonNullable<typeof init>);
  const [a, b] = site.dims as [number, number];
  if (site.node.opType === 'Gemm' && intAttr(site.node, 'transB', 0) === 1) {
    const t = new Float32Array(w.length);
    for (let n = 0; n < a; n++) for (let k = 0; k < b; k++) t[k * a + n] = w[n * b + k] as number;
    return { data: t, K: b, N: a };
  }
  return { data: w, K: a, N: b };
}

export function quantizeDynamic(model: Model, opts: DynamicOptions = {}): DynamicReport {
  const g = model.graph;
  const ed = new GraphEditor(g);
  const form = opts.form ?? DEFAULT_DYNAMIC_FORM;
  const target = opts.target ?? DEFAULT_TARGET;
  // Per-token MatMulInteger is s8 × s8, which ORT runs without a saturating int16 step on every
  // CPU (measured on its AVX2 path under qemu: full-range perplexities equal VNNI's), so it keeps
  // full range whatever the target.
  const weightForm = opts.weightForm ?? (opts.perToken ? 'full' : weightFormFor(target));
  const unsignedWeights = opts.weightType === 'uint8';
  if (unsignedWeights && opts.perToken)
    throw new QuantkitError(
      'QK_BAD_OPTION',
      '`perToken` quantizes activations to s8, and MatMulInteger takes s8 × s8 or u8 × any, not s8 × u8',
      'drop `perToken`, or keep int8 weights',
    );
  let channelsTotal = 0;
  let reducedTotal = 0;
  const report: DynamicReport = {
    form: opts.perToken ? 'per-token' : form,
    quantizedNodes: [],
    skipped: [],
    notes: [],
    weights: weightFormReport(weightForm, target, 0, 0),
  };
  // One activation scale per tensor (per row with perToken) cannot serve a channel many times
  // larger than the rest: fold the norm's per-channel magnitude into the weights first (exact in
  // fp32, no data needed; smoothquant.ts equalizeNormScales).
  const eq = equalizeNormScales(model, { exclude: opts.exclude });
  if (eq.groups.length > 0)
    report.notes.push(
      `${eq.groups.length} normalization scale(s) folded into the weights they feed (${eq.groups.map((gr) => gr.foldedInto).join(', ')})`,
    );
  const sites = findSites(model, opts, report.skipped);
  // One DynamicQuantizeLinear per activation tensor, shared by every site that reads it.
  const dql = new Map<string, { q: string; s: string; z: string }>();
  const perTokenQ = new Map<string, { q: string; s: string }>();
  if (form === 'contrib' && !opts.perToken && sites.some((s) => s.node.opType !== 'Conv'))
    model.opsets.set('com.microsoft', model.opsets.get('com.microsoft') ?? 1);

  for (const site of sites) {
    const n = site.node;
    const x = n.inputs[0] as string;
    const y = n.outputs[0] as string;
    const base = n.name || y;
    const bias = n.opType !== 'MatMul' ? n.inputs[2] : undefined;

    if (n.opType === 'Conv') {
      const init = g.initializers.get(site.weight);
      const w = loadFloat32(init as NonNullable<typeof init>);
      const { codes, scales, reducedChannels } = quantizeWeightPerChannel(w, site.dims, 0, site.weight, weightForm);
      const M = scales.length;
      channelsTotal += M;
      reducedTotal += reducedChannels;
      const d = dqlOf(ed, dql, x);
      const wq = ed.constant(`${site.weight}_quantized`, 'int8', site.dims, codes);
      // ORT's ConvInteger takes a per-tensor weight zero point only; symmetric weights have 0.
      const wz = ed.constant(`${site.weight}_zero_point`, 'int8', [], new Int8Array(1));
      const ws = ed.constant(`${site.weight}_scale`, 'float32', [M, 1, 1], scales);
      const y32 = ed.name(`${base}_int32`);
      const conv = ed.node('ConvInteger', [d.q, wq, d.z, wz], [y32]);
      conv.attributes = n.attributes.filter((a) =>
        ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'].includes(a.name),
      );
      const scaled = rescale(ed, y32, d.s, ws, base, bias ? undefined : y);
      if (bias) addBias(ed, g, scaled, bias, [M, 1, 1], y);
      g.nodes.splice(g.nodes.indexOf(n), 1);
      report.quantizedNodes.push({ node: n.name, opType: n.opType, weight: site.weight });
      continue;
    }

    const { data, K, N } = matmulWeight(model, site);
    let wq: string;
    let ws: string;
    let wz: string;
    channelsTotal += N;
    if (unsignedWeights) {
      const { codes, scales, zeroPoints } = quantizeWeightPerChannelU8(data, [K, N], 1, site.weight);
      wq = ed.constant(`${site.weight}_quantized`, 'uint8', [K, N], codes);
      ws = ed.constant(`${site.weight}_scale`, 'float32', [N], scales);
      wz = ed.constant(`${site.weight}_zero_point`, 'uint8', [N], zeroPoints);
    } else if (opts.weightGranularity === 'tensor') {
      const form = weightForm === 'seven-bit' ? 'seven-bit' : 'full';
      const { codes, scale } = quantizeWeightPerTensor(data, [K, N], site.weight, form);
      if (form === 'seven-bit') reducedTotal += N;
      wq = ed.constant(`${site.weight}_quantized`, 'int8', [K, N], codes);
      ws = ed.constant(`${site.weight}_scale`, 'float32', [N], new Float32Array(N).fill(scale));
      wz = ed.constant(`${site.weight}_zero_point`, 'int8', [N], new Int8Array(N));
    } else {
      const { codes, scales, reducedChannels } = quantizeWeightPerChannel(data, [K, N], 1, site.weight, weightForm);
      reducedTotal += reducedChannels;
      wq = ed.constant(`${site.weight}_quantized`, 'int8', [K, N], codes);
      ws = ed.constant(`${site.weight}_scale`, 'float32', [N], scales);
      wz = ed.constant(`${site.weight}_zero_point`, 'int8', [N], new Int8Array(N));
    }
    if (opts.perToken) {
      const t = perTokenOf(ed, perTokenQ, x, model.opsets.get('') ?? 13);
      const y32 = ed.name(`${base}_int32`);
      ed.node('MatMulInteger', [t.q, wq], [y32]);
      const yf = ed.name(`${base}_int32_float`);
      ed.node('Cast', [y32], [yf], { to: 1 });
      const rowScaled = ed.name(`${base}_row_scaled`);
      ed.node('Mul', [yf, t.s], [rowScaled]);
      const out = bias ? ed.name(`${base}_no_bias`) : y;
      ed.node('Mul', [rowScaled, ws], [out]);
      if (bias) addBias(ed, g, out, bias, [N], y);
    } else if (form === 'contrib') {
      const inputs = [x, wq, ws, wz];
      const out = bias ? ed.name(`${base}_no_bias`) : y;
      ed.node('DynamicQuantizeMatMul', inputs, [out], {}, 'com.microsoft');
      if (bias) addBias(ed, g, out, bias, [N], y);
    } else {
      const d = dqlOf(ed, dql, x);
      const y32 = ed.name(`${base}_int32`);
      ed.node('MatMulInteger', [d.q, wq, d.z, wz], [y32]);
      const scaled = rescale(ed, y32, d.s, ws, base, bias ? undefined : y);
      if (bias) addBias(ed, g, scaled, bias, [N], y);
    }
    g.nodes.splice(g.nodes.indexOf(n), 1);
    report.quantizedNodes.push({ node: n.name, opType: n.opType, weight: site.weight });
  }
  g.nodes = topologicalOrder(g);
  dropUnreadInitializers(model);
  // DynamicQuantizeLinear and Round are opset 11, MatMulInteger/ConvInteger 10.
  const raised = settleOpset(model);
  if (raised) report.notes.push(opsetRaiseNote(raised));
  report.weights = weightFormReport(
    weightForm,
    target,
    channelsTotal,
    reducedTotal,
    opts.perToken === true && opts.weightForm === undefined,
  );
  if (unsignedWeights)
    report.weights = {
      ...report.weights,
      reason: `u8 asymmetric per output channel (zero point each) on ${channelsTotal} channels: u8 × u8 kernels do not saturate on any CPU`,
    };
  return report;
}

function dqlOf(ed: GraphEditor, cache: Map<string, { q: string; s: string; z: string }>, x: string) {
  let d = cache.get(x);
  if (!d) {
    d = { q: ed.name(`${x}_quantized`), s: ed.name(`${x}_scale`), z: ed.name(`${x}_zero_point`) };
    ed.node('DynamicQuantizeLinear', [x], [d.q, d.s, d.z]);
    cache.set(x, d);
  }
  return d;
}

/** Cast(int32 → float) · (s_x · s_w): the pattern ORT fuses into MatMulIntegerToFloat. */
function rescale(ed: GraphEditor, y32: string, sx: string, ws: string, base: string, out: string | undefined): string {
  const yf = ed.name(`${base}_int32_float`);
  ed.node('Cast', [y32], [yf], { to: 1 });
  const s = ed.name(`${base}_scale_product`);
  ed.node('Mul', [sx, ws], [s]);
  const o = out ?? ed.name(`${base}_no_bias`);
  ed.node('Mul', [yf, s], [o]);
  return o;
}

function addBias(ed: GraphEditor, g: Model['graph'], from: string, bias: string, dims: number[], y: string): void {
  const init = g.initializers.get(bias);
  let b = bias;
  if (init && init.dims.length === 1 && dims.length > 1) {
    b = ed.constant(`${bias}_reshaped`, 'float32', dims, loadFloat32(init));
  }
  ed.node('Add', [from, b], [y]);
}

/** Per-token symmetric s8: s = max|x| / 127 per row (floored so an all-zero row divides safely). */
function perTokenOf(ed: GraphEditor, cache: Map<string, { q: string; s: string }>, x: string, opset: number) {
  let t = cache.get(x);
  if (t) return t;
  const abs = ed.name(`${x}_abs`);
  ed.node('Abs', [x], [abs]);
  const amax = ed.name(`${x}_row_absmax`);
  // ReduceMax: axes is an attribute up to opset 17, an input from opset 18.
  if (opset >= 18) {
    ed.node('ReduceMax', [abs, ed.constant(`${x}_last_axis`, 'int64', [1], BigInt64Array.of(-1n))], [amax], {
      keepdims: 1,
    });
  } else {
    ed.node('ReduceMax', [abs], [amax], { keepdims: 1 }).attributes.push(...ed.intsAttribute('axes', [-1]));
  }
  const c127 = ed.constant(`${x}_127`, 'float32', [], Float32Array.of(127));
  const tiny = ed.constant(`${x}_scale_floor`, 'float32', [], Float32Array.of(2 ** -126));
  const s0 = ed.name(`${x}_row_scale_raw`);
  ed.node('Div', [amax, c127], [s0]);
  const s = ed.name(`${x}_row_scale`);
  ed.node('Max', [s0, tiny], [s]);
  const div = ed.name(`${x}_div_scale`);
  ed.node('Div', [x, s], [div]);
  const r = ed.name(`${x}_rounded`);
  ed.node('Round', [div], [r]); // ONNX Round: half to even
  const q = ed.name(`${x}_quantized_s8`);
  ed.node('Cast', [r], [q], { to: 3 });
  t = { q, s };
  cache.set(x, t);
  return t;
}

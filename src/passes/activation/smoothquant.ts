import type { GraphNode, Model } from '../../graph/model.js';
import { memoryInitializer } from '../../graph/model.js';
import { consumers, producers, topologicalOrder } from '../../graph/topology.js';
import { makeTensor } from '../../tensor/tensor.js';
import { GraphEditor, intAttr, loadFloat32 } from './graph-util.js';

/**
 * SmoothQuant (Xiao et al. 2023): a few activation channels carry outliers 10–100× larger than
 * the rest, so one per-tensor activation scale wastes most of the int8 levels. Per channel k of
 * the reduction axis, move difficulty from the activation to the weight:
 *   s_k = max|X_k|^α / max|W_k|^(1−α),   X' = X / s,   W'[k, :] = s_k · W[k, :]
 * which leaves X·W unchanged. max|X_k| comes from calibration (per-channel absmax observer), the
 * weight maximum over every MatMul that reads X (q, k and v share one LayerNorm output, so they
 * share one s). The 1/s is folded into the preceding normalization's affine scale and bias when
 * X feeds only these MatMuls — a LayerNormalization node, or the Mul(γ) [→ Add(β)] tail that
 * older opsets decompose LayerNorm/RMSNorm into; otherwise a Mul by 1/s is inserted in front of
 * the MatMuls alone. Gemm (transA = 0) counts as a MatMul: with transB = 1 its weight is [N, K]
 * and the k-th *column* is scaled (torch exports nn.Linear on 2-D inputs that way).
 */

export interface SmoothSite {
  /** The activation tensor X (MatMul/Gemm input A), reduction axis last. */
  readonly activation: string;
  /** MatMul or Gemm (transA = 0) nodes reading X with an fp32 2-D weight. */
  readonly matmuls: GraphNode[];
  /** Length of the reduction axis K. */
  readonly channels: number;
}

/** Gemm with transB = 1 stores its weight as [N, K]. */
function weightTransposed(n: GraphNode): boolean {
  return n.opType === 'Gemm' && intAttr(n, 'transB', 0) !== 0;
}

/** Multiplies reduction row k of a MatMul/Gemm weight (column k when transposed) by s[k]. */
function scaleWeightRows(
  data: Float32Array,
  dims: readonly number[],
  transposed: boolean,
  s: Float32Array,
): Float32Array {
  const out = new Float32Array(data.length);
  const rows = dims[0] as number;
  const cols = dims[1] as number;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++)
      out[r * cols + c] = (data[r * cols + c] as number) * (s[transposed ? c : r] as number);
  }
  return out;
}

export interface SmoothQuantReport {
  alpha: number;
  groups: { activation: string; matmuls: string[]; foldedInto: string; maxAbsBefore: number; maxAbsAfter: number }[];
}

export function findSmoothSites(model: Model, opts: { exclude?: readonly string[] | undefined } = {}): SmoothSite[] {
  const g = model.graph;
  const exclude = new Set(opts.exclude ?? []);
  const groups = new Map<string, SmoothSite>();
  for (const n of topologicalOrder(g)) {
    if (
      (n.opType !== 'MatMul' && n.opType !== 'Gemm') ||
      n.domain !== '' ||
      exclude.has(n.name) ||
      exclude.has(n.opType)
    )
      continue;
    if (n.opType === 'Gemm' && intAttr(n, 'transA', 0) !== 0) continue;
    const x = n.inputs[0] as string;
    const w = g.initializers.get(n.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32' || w.dims.length !== 2 || g.initializers.has(x)) continue;
    const k = w.dims[weightTransposed(n) ? 1 : 0] as number;
    const site = groups.get(x);
    if (site) {
      if (site.channels === k) site.matmuls.push(n);
    } else {
      groups.set(x, { activation: x, matmuls: [n], channels: k });
    }
  }
  return [...groups.values()];
}

/** Rewrites `model` in place with smoothing factors from the per-channel activation maxima. */
export function applySmoothQuant(
  model: Model,
  sites: readonly SmoothSite[],
  actAbsMax: Map<string, Float32Array>,
  alpha = 0.5,
  opts: { foldOnly?: boolean } = {},
): SmoothQuantReport {
  const g = model.graph;
  const ed = new GraphEditor(g);
  const prod = producers(g);
  const cons = consumers(g);
  const report: SmoothQuantReport = { alpha, groups: [] };
  const done = new Set<string>();
  for (const site of sites) {
    const ax = actAbsMax.get(site.activation);
    const K = site.channels;
    if (!ax || ax.length !== K) continue;
    const tail = affineTail(model, site, prod, cons);
    if (!tail && opts.foldOnly === true) continue;
    // Weights shared with another group would be scaled twice: skip such groups.
    const wNames = site.matmuls.map((m) => m.inputs[1] as string);
    if (wNames.some((w) => done.has(w) || (cons.get(w) ?? []).some((c) => !site.matmuls.includes(c)))) continue;

    const weights = site.matmuls.map((m) => {
      const w = m.inputs[1] as string;
      const init = g.initializers.get(w);
      return {
        name: w,
        dims: init?.dims ?? [],
        transposed: weightTransposed(m),
        data: init ? loadFloat32(init) : new Float32Array(0),
      };
    });
    const wMax = new Float64Array(K);
    for (const w of weights) {
      const rows = w.dims[0] as number;
      const cols = w.dims[1] as number;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const k = w.transposed ? c : r;
          wMax[k] = Math.max(wMax[k] as number, Math.abs(w.data[r * cols + c] as number));
        }
      }
    }
    const s = new Float32Array(K);
    let before = 0;
    let after = 0;
    for (let k = 0; k < K; k++) {
      const a = ax[k] as number;
      const b = wMax[k] as number;
      // A dead channel (a = 0) or an all-zero weight row keeps s = 1; s is floored at 1e-5.
      const v = a > 0 && b > 0 ? Math.max(a ** alpha / b ** (1 - alpha), 1e-5) : 1;
      s[k] = v;
      before = Math.max(before, a);
      after = Math.max(after, a / v);
    }
    for (const w of weights) {
      g.initializers.set(
        w.name,
        memoryInitializer(w.name, makeTensor('float32', w.dims, scaleWeightRows(w.data, w.dims, w.transposed, s))),
      );
      done.add(w.name);
    }

    const foldedInto = tail ? foldIntoTail(model, tail, s) : insertMul(ed, site, s);
    report.groups.push({
      activation: site.activation,
      matmuls: site.matmuls.map((m) => m.name),
      foldedInto,
      maxAbsBefore: before,
      maxAbsAfter: after,
    });
  }
  g.nodes = topologicalOrder(g);
  return report;
}

/** The per-channel constants (scale γ, optional bias β) of the node tail that produces X. */
export interface AffineTail {
  readonly label: string;
  readonly constants: string[];
  readonly scale: string;
  readonly bias: string | undefined;
}

/**
 * The affine tail that can absorb 1/s: a LayerNormalization's scale and bias, or — as opsets
 * before 17 export LayerNorm and every opset exports RMSNorm — Mul(·, γ) optionally followed by
 * Add(·, β), with γ and β per-channel fp32 constants of length K read by nothing else.
 * (x·γ + β)/s = x·(γ/s) + β/s, so dividing the constants is exact whatever came before.
 * X must feed only the site's MatMuls (Shape readers see dims only) and not be a graph output.
 */
export function affineTail(
  model: Model,
  site: SmoothSite,
  prod: Map<string, GraphNode>,
  cons: Map<string, GraphNode[]>,
): AffineTail | undefined {
  const g = model.graph;
  const K = site.channels;
  const x = site.activation;
  const readers = cons.get(x) ?? [];
  if (readers.some((r) => !site.matmuls.includes(r) && r.opType !== 'Shape') || g.outputs.some((o) => o.name === x))
    return undefined;
  const perChannel = (name: string | undefined, reader: GraphNode): boolean => {
    const init = name ? g.initializers.get(name) : undefined;
    if (!init || init.dtype !== 'float32' || init.dims.length < 1 || init.dims[init.dims.length - 1] !== K)
      return false;
    if (init.dims.slice(0, -1).some((d) => d !== 1)) return false;
    return (cons.get(name as string) ?? []).every((c) => c === reader);
  };
  /** The constant operand of a binary Mul/Add and the other (data) operand. */
  const split = (n: GraphNode): { c: string; data: string } | undefined => {
    const [a, b] = n.inputs as [string, string];
    if (perChannel(b, n) && !g.initializers.has(a)) return { c: b, data: a };
    if (perChannel(a, n) && !g.initializers.has(b)) return { c: a, data: b };
    return undefined;
  };
  const p = prod.get(x);
  if (!p || p.domain !== '') return undefined;
  if (p.opType === 'LayerNormalization' && p.outputs[0] === x) {
    const [, scale, bias] = p.inputs;
    if (!perChannel(scale, p) || (bias && !perChannel(bias, p))) return undefined;
    return {
      label: `LayerNormalization '${p.name}'`,
      constants: [scale as string, ...(bias ? [bias] : [])],
      scale: scale as string,
      bias: bias || undefined,
    };
  }
  let mul = p;
  let bias: string | undefined;
  if (p.opType === 'Add') {
    const add = split(p);
    const m = add ? prod.get(add.data) : undefined;
    if (!add || !m || (cons.get(add.data) ?? []).length !== 1 || g.outputs.some((o) => o.name === add.data))
      return undefined;
    mul = m;
    bias = add.c;
  }
  if (mul.opType !== 'Mul' || mul.domain !== '') return undefined;
  const scale = split(mul)?.c;
  if (!scale) return undefined;
  return {
    label: `Mul '${mul.name}'${bias ? ` and Add '${p.name}'` : ''}`,
    constants: [scale, ...(bias ? [bias] : [])],
    scale,
    bias,
  };
}

/** Divides the tail's constants by s (channel k by s[k]). */
export function foldIntoTail(model: Model, tail: AffineTail, s: Float32Array): string {
  const g = model.graph;
  for (const name of tail.constants) {
    const init = g.initializers.get(name);
    if (!init) continue;
    const d = loadFloat32(init);
    const out = new Float32Array(d.length);
    for (let k = 0; k < d.length; k++) out[k] = (d[k] as number) / (s[k] as number);
    g.initializers.set(name, memoryInitializer(name, makeTensor('float32', init.dims, out)));
  }
  return tail.label;
}

/**
 * Data-free channel equalization for weight-only and dynamic quantization: where X comes out of a
 * foldable affine tail (γ, β), the channel magnitude is known without data, |γ_k| + |β_k| (the
 * normalized input is O(1) per channel). SmoothQuant with α = 1 on that proxy gives
 * s_k = |γ_k| + |β_k|: X' = X/s has every channel O(1), and W'[k, :] = s_k·W[k, :] is the
 * *effective* weight the normalized input meets. Quantizing W' weighs every channel's error by
 * how much it reaches the output — an outlier channel (γ_k large, W[k, :] correspondingly small,
 * as in LLMs) no longer leaves its small weights to a block scale set by the others, and a
 * per-tensor dynamic activation scale no longer spends its levels on it. Exact in fp32. Only
 * sites with an outlier channel (OUTLIER_RATIO) are touched.
 */
/**
 * Equalize only where some channel stands out: max over median of the magnitudes at least this
 * (LLM.int8()'s outlier threshold is 6σ; a well-behaved norm's γ spreads over a factor 2–3), so
 * models without outliers keep their weights untouched.
 */
export const OUTLIER_RATIO = 6;

function outlierRatio(a: Float32Array): number {
  const sorted = Float32Array.from(a).sort();
  const median = sorted[sorted.length >> 1] as number;
  const max = sorted[sorted.length - 1] as number;
  return median > 0 ? max / median : Infinity;
}

export function equalizeNormScales(
  model: Model,
  opts: { exclude?: readonly string[] | undefined } = {},
): SmoothQuantReport {
  const g = model.graph;
  const prod = producers(g);
  const cons = consumers(g);
  const proxies = new Map<string, Float32Array>();
  const sites: SmoothSite[] = [];
  for (const site of findSmoothSites(model, opts)) {
    const tail = affineTail(model, site, prod, cons);
    if (!tail) continue;
    const gamma = loadFloat32(g.initializers.get(tail.scale) as NonNullable<ReturnType<typeof g.initializers.get>>);
    const beta = tail.bias
      ? loadFloat32(g.initializers.get(tail.bias) as NonNullable<ReturnType<typeof g.initializers.get>>)
      : undefined;
    const a = new Float32Array(site.channels);
    for (let k = 0; k < a.length; k++) a[k] = Math.abs(gamma[k] as number) + Math.abs(beta?.[k] ?? 0);
    if (outlierRatio(a) < OUTLIER_RATIO) continue;
    proxies.set(site.activation, a);
    sites.push(site);
  }
  return applySmoothQuant(model, sites, proxies, 1, { foldOnly: true });
}

function insertMul(ed: GraphEditor, site: SmoothSite, s: Float32Array): string {
  const inv = new Float32Array(s.length);
  for (let k = 0; k < s.length; k++) inv[k] = 1 / (s[k] as number);
  const c = ed.constant(`${site.activation}_smooth_inv_scale`, 'float32', [s.length], inv);
  const out = ed.name(`${site.activation}_smoothed`);
  ed.node('Mul', [site.activation, c], [out]);
  for (const m of site.matmuls) m.inputs[0] = out;
  return 'Mul';
}

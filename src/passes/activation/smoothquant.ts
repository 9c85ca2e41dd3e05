import type { GraphNode, Model } from '../../graph/model.js';
import { memoryInitializer } from '../../graph/model.js';
import { consumers, producers, topologicalOrder } from '../../graph/topology.js';
import { makeTensor } from '../../tensor/tensor.js';
import { GraphEditor, loadFloat32 } from './graph-util.js';

/**
 * SmoothQuant (Xiao et al. 2023): a few activation channels carry outliers 10–100× larger than
 * the rest, so one per-tensor activation scale wastes most of the int8 levels. Per channel k of
 * the reduction axis, move difficulty from the activation to the weight:
 *   s_k = max|X_k|^α / max|W_k|^(1−α),   X' = X / s,   W'[k, :] = s_k · W[k, :]
 * which leaves X·W unchanged. max|X_k| comes from calibration (per-channel absmax observer), the
 * weight maximum over every MatMul that reads X (q, k and v share one LayerNorm output, so they
 * share one s). The 1/s is folded into a preceding LayerNormalization's scale and bias when X
 * feeds only these MatMuls; otherwise a Mul by 1/s is inserted in front of the MatMuls alone.
 */

export interface SmoothSite {
  /** The activation tensor X (MatMul input A), reduction axis last. */
  readonly activation: string;
  readonly matmuls: GraphNode[];
  /** Length of the reduction axis K. */
  readonly channels: number;
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
    if (n.opType !== 'MatMul' || n.domain !== '' || exclude.has(n.name) || exclude.has('MatMul')) continue;
    const x = n.inputs[0] as string;
    const w = g.initializers.get(n.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32' || w.dims.length !== 2 || g.initializers.has(x)) continue;
    const k = w.dims[0] as number;
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
export function applySmoothQuant(model: Model, sites: readonly SmoothSite[], actAbsMax: Map<string, Float32Array>, alpha = 0.5): SmoothQuantReport {
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
    // Weights shared with another group would be scaled twice: skip such groups.
    const wNames = site.matmuls.map((m) => m.inputs[1] as string);
    if (wNames.some((w) => done.has(w) || (cons.get(w) ?? []).some((c) => !site.matmuls.includes(c)))) continue;

    const weights = wNames.map((w) => {
      const init = g.initializers.get(w);
      return { name: w, dims: init?.dims ?? [], data: init ? loadFloat32(init) : new Float32Array(0) };
    });
    const wMax = new Float64Array(K);
    for (const w of weights) {
      const N = w.dims[1] as number;
      for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) wMax[k] = Math.max(wMax[k] as number, Math.abs(w.data[k * N + j] as number));
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
      const N = w.dims[1] as number;
      const out = new Float32Array(w.data.length);
      for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) out[k * N + j] = (w.data[k * N + j] as number) * (s[k] as number);
      g.initializers.set(w.name, memoryInitializer(w.name, makeTensor('float32', w.dims, out)));
      done.add(w.name);
    }

    const foldedInto = foldIntoLayerNorm(model, site, s, prod.get(site.activation), cons.get(site.activation) ?? []) ?? insertMul(ed, site, s);
    report.groups.push({ activation: site.activation, matmuls: site.matmuls.map((m) => m.name), foldedInto, maxAbsBefore: before, maxAbsAfter: after });
  }
  g.nodes = topologicalOrder(g);
  return report;
}

/** Divides a LayerNormalization's scale and bias by s when X feeds only the smoothed MatMuls. */
function foldIntoLayerNorm(model: Model, site: SmoothSite, s: Float32Array, ln: GraphNode | undefined, readers: GraphNode[]): string | undefined {
  const g = model.graph;
  if (!ln || ln.opType !== 'LayerNormalization' || ln.outputs[0] !== site.activation) return undefined;
  // Shape readers only see the dims, which smoothing leaves alone.
  if (readers.some((r) => !site.matmuls.includes(r) && r.opType !== 'Shape') || g.outputs.some((o) => o.name === site.activation)) return undefined;
  const names = [ln.inputs[1], ln.inputs[2]].filter((n): n is string => !!n);
  const consumersOf = consumers(g);
  for (const name of names) {
    const init = g.initializers.get(name);
    if (!init || init.dtype !== 'float32' || init.dims.length !== 1 || init.dims[0] !== s.length) return undefined;
    if ((consumersOf.get(name) ?? []).length !== 1) return undefined; // shared with another LN
  }
  for (const name of names) {
    const init = g.initializers.get(name);
    if (!init) continue;
    const d = loadFloat32(init);
    const out = new Float32Array(d.length);
    for (let k = 0; k < d.length; k++) out[k] = (d[k] as number) / (s[k] as number);
    g.initializers.set(name, memoryInitializer(name, makeTensor('float32', init.dims, out)));
  }
  return `LayerNormalization '${ln.name}'`;
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

import type { Graph, GraphNode, Model } from '../graph/model.js';
import { memoryInitializer } from '../graph/model.js';
import { consumers, uniqueName, usedNames } from '../graph/topology.js';
import { floatAttr, intAttr, makeAttr } from '../graph/attributes.js';
import { makeTensor } from '../tensor/tensor.js';

/**
 * Folds an inference-mode BatchNormalization that directly follows a Conv (channel axis 0 of the
 * weight) or a Gemm (output column n) into that op's weight and bias:
 *   s = gamma / sqrt(var + eps);  W'[c] = W[c] · s[c];  b'[c] = (b[c] − mean[c]) · s[c] + beta[c]
 * (ONNX BatchNormalization: y = (x − mean) / sqrt(var + eps) · scale + B). Computed in float64,
 * stored float32. Only when the Conv/Gemm output feeds the BN alone, every parameter is an fp32
 * initializer and the BN is not in training mode. Returns how many were folded.
 */
export function foldBatchNorm(model: Model): number {
  const g = model.graph;
  const taken = usedNames(g);
  const readers = consumers(g);
  const producer = new Map<string, GraphNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const outputs = new Set(g.outputs.map((o) => o.name));
  const removed = new Set<GraphNode>();
  let folded = 0;
  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization' || bn.domain !== '') continue;
    if (bn.outputs.slice(1).some((o) => o !== '')) continue;
    if (intAttr(bn, 'training_mode', 0) !== 0) continue;
    const x = bn.inputs[0] as string;
    const prev = producer.get(x);
    if (!prev || (prev.opType !== 'Conv' && prev.opType !== 'Gemm') || prev.domain !== '') continue;
    if (outputs.has(x) || (readers.get(x) ?? []).length !== 1) continue;
    const params = bn.inputs.slice(1, 5).map((name) => floatInit(g, name));
    if (params.some((p) => !p)) continue;
    const [gamma, beta, mean, variance] = params as [Float32Array, Float32Array, Float32Array, Float32Array];
    const eps = floatAttr(bn, 'epsilon', 1e-5);
    const C = gamma.length;
    const w = floatInit(g, prev.inputs[1]);
    if (!w) continue;
    const wDims = g.initializers.get(prev.inputs[1] as string)?.dims as readonly number[];
    const s = new Float64Array(C);
    for (let c = 0; c < C; c++) s[c] = (gamma[c] as number) / Math.sqrt((variance[c] as number) + eps);

    const newW = new Float32Array(w.length);
    let bias: Float64Array;
    if (prev.opType === 'Conv') {
      if (wDims[0] !== C) continue;
      const per = w.length / C;
      for (let c = 0; c < C; c++)
        for (let i = 0; i < per; i++) newW[c * per + i] = (w[c * per + i] as number) * (s[c] as number);
      const b = prev.inputs[2] ? floatInit(g, prev.inputs[2]) : new Float32Array(C);
      if (!b || b.length !== C) continue;
      bias = Float64Array.from(b);
    } else {
      const transA = intAttr(prev, 'transA', 0);
      const transB = intAttr(prev, 'transB', 0) === 1;
      const alpha = floatAttr(prev, 'alpha', 1);
      const betaG = floatAttr(prev, 'beta', 1);
      if (transA !== 0 || wDims.length !== 2) continue;
      const N = transB ? (wDims[0] as number) : (wDims[1] as number);
      const K = transB ? (wDims[1] as number) : (wDims[0] as number);
      if (N !== C) continue;
      for (let k = 0; k < K; k++) {
        for (let n = 0; n < N; n++) {
          const i = transB ? n * K + k : k * N + n;
          newW[i] = alpha * (w[i] as number) * (s[n] as number);
        }
      }
      const cName = prev.inputs[2];
      const c0 = cName ? floatInit(g, cName) : new Float32Array(1);
      if (!c0 || (c0.length !== 1 && c0.length !== N)) continue;
      bias = Float64Array.from({ length: N }, (_, n) => betaG * (c0[c0.length === 1 ? 0 : n] as number));
      prev.attributes = prev.attributes
        .filter((a) => a.name !== 'alpha' && a.name !== 'beta')
        .concat([makeAttr('alpha', 1, 'float'), makeAttr('beta', 1, 'float')]);
    }
    const newB = new Float32Array(C);
    for (let c = 0; c < C; c++)
      newB[c] = ((bias[c] as number) - (mean[c] as number)) * (s[c] as number) + (beta[c] as number);

    const wName = uniqueName(g, `${prev.inputs[1] as string}_bnfolded`, taken);
    const bName = uniqueName(g, `${prev.name || prev.opType}_bias_bnfolded`, taken);
    g.initializers.set(wName, memoryInitializer(wName, makeTensor('float32', wDims, newW)));
    g.initializers.set(bName, memoryInitializer(bName, makeTensor('float32', [C], newB)));
    prev.inputs = [prev.inputs[0] as string, wName, bName];
    prev.outputs = [bn.outputs[0] as string];
    removed.add(bn);
    folded++;
  }
  if (folded === 0) return 0;
  g.nodes = g.nodes.filter((n) => !removed.has(n));
  // Drop initializers nothing reads any more (the unfolded weights, BN statistics).
  const read = new Set<string>();
  for (const n of g.nodes) for (const i of n.inputs) read.add(i);
  for (const o of g.outputs) read.add(o.name);
  for (const name of [...g.initializers.keys()]) if (!read.has(name)) g.initializers.delete(name);
  for (const o of [...g.valueInfo.keys()])
    if (!read.has(o) && !g.nodes.some((n) => n.outputs.includes(o))) g.valueInfo.delete(o);
  return folded;
}

function floatInit(g: Graph, name: string | undefined): Float32Array | undefined {
  if (!name) return undefined;
  const init = g.initializers.get(name);
  if (!init || init.dtype !== 'float32') return undefined;
  const t = init.load();
  return t.data instanceof Float32Array ? t.data : undefined;
}

import type { GraphNode, Model } from '../../graph/model.js';
import { consumers, uniqueName, usedNames } from '../../graph/topology.js';
import { decodeFloat16, encodeFloat16 } from '../../formats/float16.js';
import { makeAttr } from '../../graph/attributes.js';
import { sqnrDb } from '../../quant/metrics.js';
import { makeTensor, type Tensor } from '../../tensor/tensor.js';
import { inferElemTypes } from './elem-types.js';
import { addInitializer, node } from './graph-edit.js';
import type { LayerReport } from './types.js';

/**
 * The whole graph in fp16, graph inputs and outputs kept fp32 (a Cast after each float input,
 * before each float output). Initializers are rounded to fp16 (nearest even); values beyond
 * ±65504 are clamped to ±65504 rather than becoming ±Inf, and listed in the report.
 *
 * Block list: ops kept in fp32 with Casts around them — long reductions whose fp16 accumulation
 * and fp16 intermediate (mean, variance, exp-sum) lose accuracy. Kernel coverage is not a reason:
 * onnxruntime-node 1.30 on CPU loads and runs every common op in fp16 (Conv, Gemm, MatMul, Erf,
 * pooling, Softmax, LayerNormalization ... checked one by one; ORT inserts its own Casts where a
 * CPU kernel lacks fp16). Nodes of other domains (contrib ops) stay fp32 except FP16_CONTRIB_OPS.
 */
export const DEFAULT_FP16_BLOCK_LIST: readonly string[] = [
  'LayerNormalization',
  'Softmax',
  'LogSoftmax',
  'ReduceMean',
  'ReduceSum',
  'ReduceSumSquare',
  'ReduceL2',
  'ReduceLogSumExp',
  'InstanceNormalization',
  'GroupNormalization',
];

/**
 * com.microsoft ops that have a float16 kernel in ONNX Runtime's CPU provider (T: float,
 * float16), which onnxruntime-web's WebAssembly build shares: converted with the graph (their
 * float initializers, the scales, become fp16) instead of being kept in fp32 between Casts. A
 * q4 model converted to fp16 (transformers.js's q4f16) then holds no Cast around its MatMulNBits.
 * MatMulBnb4 has a float-only CPU kernel and stays fp32.
 */
export const FP16_CONTRIB_OPS: readonly string[] = ['MatMulNBits', 'GatherBlockQuantized'];

/** Inputs that stay float32 whatever T is (the type constraint is tensor(float) only). */
const FP32_SLOTS: Record<string, readonly number[]> = { Resize: [1, 2], Upsample: [1] };

const FP16_MAX = 65504;
const FLOAT = 1;
const FLOAT16 = 10;

export interface Fp16Result {
  layers: LayerReport[];
  notes: string[];
}

function toFp16(t: Tensor): { tensor: Tensor; clamped: number; maxAbs: number; back: Float32Array } {
  const src = t.data as Float32Array;
  const bits = new Uint16Array(src.length);
  const back = new Float32Array(src.length);
  let clamped = 0;
  let maxAbs = 0;
  for (let i = 0; i < src.length; i++) {
    let x = src[i] as number;
    if (Math.abs(x) > FP16_MAX && Number.isFinite(x)) {
      clamped++;
      maxAbs = Math.max(maxAbs, Math.abs(x));
      x = x > 0 ? FP16_MAX : -FP16_MAX;
    }
    const b = encodeFloat16(x);
    bits[i] = b;
    back[i] = decodeFloat16(b);
  }
  return { tensor: makeTensor('float16', t.dims, bits), clamped, maxAbs, back };
}

export function convertToFloat16(model: Model, blockList: readonly string[] = DEFAULT_FP16_BLOCK_LIST): Fp16Result {
  const g = model.graph;
  const types = inferElemTypes(g);
  const isFloat = (v: string) => types.get(v) === 'float32';
  const blocked = (n: GraphNode) =>
    (n.domain !== '' && !(n.domain === 'com.microsoft' && FP16_CONTRIB_OPS.includes(n.opType))) ||
    blockList.includes(n.opType);
  const taken = usedNames(g);
  const fresh = (base: string) => uniqueName(g, base, taken);
  const readers = consumers(g);
  const notes: string[] = [];
  const layers: LayerReport[] = [];
  const front: GraphNode[] = [];

  // Values that are fp16 after the rewrite: float values not produced by a blocked node and not
  // graph inputs; converted initializers join below.
  const producedBy = new Map<string, GraphNode>();
  for (const n of g.nodes) for (const o of n.outputs) producedBy.set(o, n);
  const half = new Set<string>();
  for (const n of g.nodes) if (!blocked(n)) for (const o of n.outputs) if (isFloat(o)) half.add(o);

  // Initializers: fp16 unless only fp32 readers use them.
  for (const [name, init] of [...g.initializers]) {
    if (init.dtype !== 'float32') continue;
    const rs = readers.get(name) ?? [];
    const wantsHalf = rs.some((n) => !blocked(n) && !(FP32_SLOTS[n.opType] ?? []).some((s) => n.inputs[s] === name));
    if (!wantsHalf) continue;
    const t = init.load();
    const r = toFp16(t);
    addInitializer(g, name, r.tensor);
    half.add(name);
    const count = (t.data as Float32Array).length;
    layers.push({
      nodes: rs.map((n) => n.name),
      opTypes: rs.map((n) => n.opType),
      weight: name,
      dims: [...t.dims],
      scheme: 'fp16',
      form: 'float16 initializer',
      sqnrDb: count > 0 ? sqnrDb(t.data as Float32Array, r.back) : null,
      bytesBefore: 4 * count,
      bytesAfter: 2 * count,
      note: r.clamped > 0 ? `${r.clamped} values beyond ±65504 clamped (max |x| ${r.maxAbs.toExponential(3)})` : '',
    });
    if (r.clamped > 0)
      notes.push(
        `initializer '${name}': ${r.clamped} values beyond fp16 range clamped to ±65504 (max |x| ${r.maxAbs.toExponential(3)})`,
      );
  }

  // Float graph inputs: Cast to fp16 once, readers rewired.
  for (const v of g.inputs) {
    if (!isFloat(v.name)) continue;
    const h = fresh(`${v.name}_fp16`);
    front.push(node('Cast', [v.name], [h], fresh(`${v.name}_to_fp16`), { to: FLOAT16 }));
    for (const n of readers.get(v.name) ?? []) n.inputs = n.inputs.map((i) => (i === v.name ? h : i));
    half.add(h);
  }

  // fp32 views of fp16 values, made once each, for blocked readers and fp32-only slots.
  const fp32Of = new Map<string, string>();
  const added: { after: GraphNode | undefined; node: GraphNode }[] = [];
  const asFloat = (v: string): string => {
    let f = fp32Of.get(v);
    if (!f) {
      f = fresh(`${v}_fp32`);
      fp32Of.set(v, f);
      added.push({ after: producedBy.get(v), node: node('Cast', [v], [f], fresh(`${v}_to_fp32`), { to: FLOAT }) });
    }
    return f;
  };
  const isGraphOutput = new Set(g.outputs.map((o) => o.name));
  for (const n of [...g.nodes]) {
    if (blocked(n)) {
      n.inputs = n.inputs.map((i) => (half.has(i) ? asFloat(i) : i));
      // fp32 outputs of a blocked node go back to fp16 for fp16 readers.
      n.outputs = n.outputs.map((o) => {
        if (!isFloat(o) || isGraphOutput.has(o)) return o;
        const rs = readers.get(o) ?? [];
        if (rs.every(blocked)) return o;
        const f = fresh(`${o}_fp32`);
        added.push({ after: n, node: node('Cast', [f], [o], fresh(`${o}_to_fp16`), { to: FLOAT16 }) });
        half.add(o);
        return f;
      });
      continue;
    }
    for (const s of FP32_SLOTS[n.opType] ?? []) {
      const i = n.inputs[s];
      if (i && half.has(i)) n.inputs[s] = asFloat(i);
    }
    // Ops that make floats from attributes now make fp16.
    if (n.opType === 'Cast') {
      n.attributes = n.attributes.map((a) =>
        a.name === 'to' && a.kind === 'int' && a.value === FLOAT ? makeAttr('to', FLOAT16) : a,
      );
    }
    if (n.opType === 'ConstantOfShape' || n.opType === 'Constant') {
      n.attributes = n.attributes.map((a) => {
        if (a.name !== 'value' || a.kind !== 'tensor' || a.value.dtype !== 'float32') return a;
        return makeAttr('value', toFp16(a.value).tensor);
      });
    }
  }
  // Graph outputs produced in fp16: the producer writes <name>_fp16, a Cast restores fp32.
  for (const o of g.outputs) {
    if (!half.has(o.name) || g.initializers.has(o.name)) continue;
    const p = producedBy.get(o.name);
    if (!p) continue;
    const h = fresh(`${o.name}_fp16`);
    p.outputs = p.outputs.map((x) => (x === o.name ? h : x));
    for (const n of g.nodes) if (n !== p) n.inputs = n.inputs.map((i) => (i === o.name ? h : i));
    for (const a of added) if (a.node.inputs[0] === o.name) a.node.inputs[0] = h;
    added.push({ after: p, node: node('Cast', [h], [o.name], fresh(`${o.name}_to_fp32`), { to: FLOAT }) });
  }
  // Insert each new Cast right after its producer (or at the front for initializers/inputs).
  for (const a of added) {
    if (!a.after) {
      front.push(a.node);
      continue;
    }
    g.nodes.splice(g.nodes.indexOf(a.after) + 1, 0, a.node);
  }
  g.nodes = [...front, ...g.nodes];
  // Value types changed; stale value_info would contradict them, so ORT re-infers.
  for (const [name, v] of [...g.valueInfo])
    if (v.dtype === 'float32' || v.dtype === 'float16') g.valueInfo.delete(name);
  const kept = [...new Set(g.nodes.filter(blocked).map((n) => n.opType))].filter((t) => t !== 'Cast');
  if (kept.length > 0) notes.push(`kept in fp32 (block list): ${kept.join(', ')}`);
  return { layers, notes };
}

import { QuantkitError } from '../../errors.js';
import { makeAttr, type Attribute } from '../../graph/attributes.js';
import type { Graph, GraphNode, Initializer } from '../../graph/model.js';
import { memoryInitializer } from '../../graph/model.js';
import { uniqueName, usedNames } from '../../graph/topology.js';
import { affineParams, quantizeAffine } from '../../quant/affine.js';
import { blockShapeFor, makeLayout } from '../../quant/layout.js';
import { channelLayout, pairViolations, raiseToPairSafe } from '../../quant/pair-safe.js';
import { blockRanges } from '../../quant/range.js';
import type { DType } from '../../tensor/dtype.js';
import { makeTensor, type TensorData } from '../../tensor/tensor.js';
import { DEFAULT_WEIGHT_FORM, type WeightForm } from './weight-form.js';

/** Small graph-editing helpers shared by the activation passes. */
export class GraphEditor {
  private readonly taken: Set<string>;

  constructor(readonly graph: Graph) {
    this.taken = usedNames(graph);
  }

  name(base: string): string {
    return uniqueName(this.graph, base, this.taken);
  }

  /** Adds an initializer under a fresh name derived from `base`; returns the name. */
  constant(base: string, dtype: DType, dims: readonly number[], data: TensorData): string {
    const name = this.name(base);
    this.graph.initializers.set(name, memoryInitializer(name, makeTensor(dtype, dims, data)));
    return name;
  }

  /** An INTS attribute, for nodes that need one (ReduceMax axes before opset 18). */
  intsAttribute(name: string, values: number[]): Attribute[] {
    return [makeAttr(name, values, 'ints')];
  }

  /** Appends a node (callers re-sort the graph topologically at the end). Attributes are INTs. */
  node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, number> = {}, domain = ''): GraphNode {
    const n: GraphNode = {
      name: this.name(`${outputs[0] ?? opType}_node`),
      opType, domain, inputs, outputs,
      attributes: Object.entries(attrs).map(([k, v]) => makeAttr(k, v, 'int')),
    };
    this.graph.nodes.push(n);
    return n;
  }
}

// The typed readers live in graph/attributes.ts; re-exported here for the passes that import them from this module.
export { floatAttr, intAttr } from '../../graph/attributes.js';

export function loadFloat32(init: Initializer): Float32Array {
  const t = init.load();
  if (!(t.data instanceof Float32Array)) {
    throw new QuantkitError('QK_WEIGHT_NOT_FLOAT32', `initializer '${init.name}' is ${t.dtype}, not float32`, 'activation quantization reads fp32 models; convert the model to fp32 first');
  }
  return t.data;
}

/**
 * s8 symmetric per-channel weights along `axis`, narrow range (as ONNX Runtime's quantizer writes
 * them: no -128, so u8×s8 products never need the extra code), in one of the WEIGHT_FORMS
 * (weight-form.ts says which runs exactly where):
 *   'full'       scale = max|w| / 127, codes [-127, 127]
 *   'pair-safe'  scale raised where needed so the two largest positive codes of a channel sum to
 *                ≤ 128, and the two largest negative magnitudes too (quant/pair-safe.ts): no pair
 *                of u8 × s8 products can saturate int16; most channels keep the full-range scale
 *   'seven-bit'  scale = max|w| / 64, codes [-64, 64] (ORT's reduce_range)
 * `reducedChannels`: channels whose scale is coarser than the full-range one.
 */
export function quantizeWeightPerChannel(
  data: Float32Array, dims: readonly number[], axis: number, name: string, form: WeightForm = DEFAULT_WEIGHT_FORM,
): { codes: Int8Array; scales: Float32Array; reducedChannels: number } {
  const layout = makeLayout(dims, blockShapeFor(dims, { axis }));
  const q = form === 'seven-bit' ? { qmin: -64, qmax: 64, symmetric: true } : { qmin: -127, qmax: 127, symmetric: true };
  const r = blockRanges(data, layout, { kind: 'absmax' }, q, 'error', name);
  const params = affineParams(r.lo, r.hi, q);
  const quantize = () => quantizeAffine(data, layout, params, new Int8Array(data.length), { name }) as Int8Array;
  if (form !== 'pair-safe') return { codes: quantize(), scales: params.scale, reducedChannels: form === 'seven-bit' ? params.scale.length : 0 };
  const channels = channelLayout(dims, axis);
  const fullScales = Float32Array.from(params.scale);
  raiseToPairSafe(params.scale, data, channels);
  let codes = quantize();
  // Rounding can lift a top-two sum to 129; a slightly coarser scale fixes it (one step suffices
  // in practice; the loop is bounded by the scale growing past what any sum needs).
  for (let bad = pairViolations(codes, channels); bad.length > 0; bad = pairViolations(codes, channels)) {
    for (const c of bad) params.scale[c] = Math.fround((params.scale[c] as number) * (1 + 2 ** -10));
    codes = quantize();
  }
  let reducedChannels = 0;
  for (let c = 0; c < fullScales.length; c++) if ((params.scale[c] as number) > (fullScales[c] as number)) reducedChannels++;
  return { codes, scales: params.scale, reducedChannels };
}

/** Replaces input `from` by `to` on one node (every slot that reads it). */
export function rewireInput(node: GraphNode, from: string, to: string): void {
  for (let i = 0; i < node.inputs.length; i++) if (node.inputs[i] === from) node.inputs[i] = to;
}

import { QuantkitError } from '../errors.js';
import { attributeValue } from '../io/onnx/attribute.js';
import type { GraphProto, ModelProto, NodeProto } from '../io/onnx/proto.js';
import { tensorFromProto } from '../io/onnx/tensor.js';
import type { Tensor } from '../tensor/tensor.js';
import { NodeAttributes } from './attributes.js';
import type { Emulation } from './emulate.js';
import { type FusedSite, fusedSites, withFusedSaturation } from './qdq-emulation.js';
import type { OpContext } from './op.js';
import type { OpRegistry } from './registry.js';
import { defaultRegistry } from './registry.js';

export interface RunOptions {
  registry?: OpRegistry;
  /**
   * Reproduce a CPU kernel's integer arithmetic (emulate.ts) in the integer ops and in the QDQ
   * patterns ONNX Runtime fuses into integer kernels (qdq-emulation.ts). Default: exact ONNX semantics.
   */
  emulate?: Emulation | undefined;
}

/**
 * Runs `model` on `inputs` (graph input name → tensor) with the pure-TypeScript reference ops and
 * returns the graph outputs by name. Initializers and Constant nodes are values; an input that has
 * an initializer may be overridden by `inputs`. Nodes run in graph order when that order is
 * topological (ONNX requires it), otherwise in a topological order computed here.
 */
export function runModel(model: ModelProto, inputs: Map<string, Tensor>, opts: RunOptions = {}): Map<string, Tensor> {
  const graph = model.graph;
  if (!graph) throw new QuantkitError('QK_ONNX_NO_GRAPH', 'the model has no graph', 'load a complete ONNX model');
  const registry = opts.registry ?? defaultRegistry();
  const opsets = new Map(model.opsetImport.map((o) => [o.domain === 'ai.onnx' ? '' : o.domain, Number(o.version)]));
  const values = new Map<string, Tensor>();
  for (const init of graph.initializer) values.set(init.name, tensorFromProto(init, `initializer '${init.name}'`));
  for (const input of graph.input) {
    const given = inputs.get(input.name);
    if (given) values.set(input.name, given);
    else if (!values.has(input.name)) {
      throw new QuantkitError('QK_MISSING_INPUT', `graph input '${input.name}' has no value`, `pass a tensor for '${input.name}' (inputs given: ${[...inputs.keys()].join(', ') || 'none'})`);
    }
  }
  const fused = opts.emulate ? fusedSites(graph) : new Map<NodeProto, FusedSite>();
  for (const [index, node] of topologicalOrder(graph, values)) {
    const where = `node '${node.name || node.output[0] || '?'}' (#${index}, ${node.opType})`;
    const outputs = node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx')
      ? [constantValue(node, where)]
      : runNode(node, index, where, values, registry, opsets, opts.emulate);
    const site = fused.get(node);
    if (site && opts.emulate && outputs[0]) {
      outputs[0] = withFusedSaturation(node, site, outputs[0], values, opts.emulate, { attrs: attributesOf(node, where), opset: 0, where });
    }
    node.output.forEach((name, k) => {
      const t = outputs[k];
      if (name !== '' && t) values.set(name, t);
    });
  }
  const result = new Map<string, Tensor>();
  for (const out of graph.output) {
    const t = values.get(out.name);
    if (!t) throw new QuantkitError('QK_MISSING_OUTPUT', `graph output '${out.name}' was not produced by any node`, 'check the model: every graph output must be a node output, initializer or input');
    result.set(out.name, t);
  }
  return result;
}

function runNode(node: NodeProto, index: number, where: string, values: Map<string, Tensor>, registry: OpRegistry, opsets: Map<string, number>, emulate: Emulation | undefined): Tensor[] {
  const impl = registry.get(node.opType, node.domain);
  if (!impl) {
    throw new QuantkitError(
      'QK_UNSUPPORTED_OP',
      `node '${node.name}' (#${index}) uses op '${node.domain ? `${node.domain}::` : ''}${node.opType}' which the reference interpreter does not run`,
      `supported ops: ${registry.names().join(', ')}`,
    );
  }
  const args = node.input.map((name, k) => {
    if (name === '') return undefined; // an omitted optional input
    const t = values.get(name);
    if (!t) throw new QuantkitError('QK_MISSING_INPUT', `${where}: input #${k} '${name}' has no value`, 'it is not a graph input, initializer or earlier node output');
    return t;
  });
  const ctx: OpContext = { attrs: attributesOf(node, where), opset: opsets.get(node.domain === 'ai.onnx' ? '' : node.domain) ?? 0, where, emulate };
  return impl(args, ctx);
}

function attributesOf(node: NodeProto, where: string): NodeAttributes {
  return new NodeAttributes(new Map(node.attribute.map((a) => [a.name, attributeValue(a, where)])), where);
}

/** Constant: the `value` tensor attribute (the value_float/value_ints/... forms as 0-D/1-D tensors). */
function constantValue(node: NodeProto, where: string): Tensor {
  const attrs = attributesOf(node, where);
  const t = attrs.tensor('value');
  if (t) return t;
  if (attrs.has('value_float')) return { dtype: 'float32', dims: [], data: Float32Array.of(attrs.float('value_float', 0)) };
  if (attrs.has('value_int')) return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(attrs.int('value_int', 0))) };
  const floats = node.attribute.find((a) => a.name === 'value_floats');
  if (floats) return { dtype: 'float32', dims: [floats.floats.length], data: Float32Array.from(floats.floats) };
  const ints = node.attribute.find((a) => a.name === 'value_ints');
  if (ints) return { dtype: 'int64', dims: [ints.ints.length], data: BigInt64Array.from(ints.ints) };
  throw new QuantkitError('QK_UNSUPPORTED_OP', `${where}: Constant without a value, value_float(s) or value_int(s) attribute`, 'the reference interpreter supports tensor, float and int constants');
}

/**
 * Node order to run: graph order if every input is available when its node comes (the ONNX rule),
 * else Kahn's algorithm over value names. Unresolvable inputs are reported when the node runs.
 */
function topologicalOrder(graph: GraphProto, initial: Map<string, Tensor>): [number, NodeProto][] {
  const nodes = graph.node.map((n, i) => [i, n] as [number, NodeProto]);
  const available = new Set(initial.keys());
  let inOrder = true;
  for (const [, n] of nodes) {
    if (n.input.some((name) => name !== '' && !available.has(name))) inOrder = false;
    for (const o of n.output) available.add(o);
  }
  if (inOrder) return nodes;
  const ready = new Set(initial.keys());
  const pending = [...nodes];
  const order: [number, NodeProto][] = [];
  while (pending.length > 0) {
    const k = pending.findIndex(([, n]) => n.input.every((name) => name === '' || ready.has(name)));
    if (k < 0) return [...order, ...pending]; // a cycle or a missing value: the node reports it
    const [entry] = pending.splice(k, 1) as [[number, NodeProto]];
    order.push(entry);
    for (const o of entry[1].output) ready.add(o);
  }
  return order;
}

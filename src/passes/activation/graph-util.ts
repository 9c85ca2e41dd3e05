import { QuantkitError } from '../../errors.js';
import { makeAttr, type Attribute } from '../../graph/attributes.js';
import type { Graph, GraphNode, Initializer } from '../../graph/model.js';
import { memoryInitializer } from '../../graph/model.js';
import { uniqueName, usedNames } from '../../graph/topology.js';
import type { DType } from '../../tensor/dtype.js';
import { makeTensor, type TensorData } from '../../tensor/tensor.js';

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
  node(
    opType: string,
    inputs: string[],
    outputs: string[],
    attrs: Record<string, number> = {},
    domain = '',
  ): GraphNode {
    const n: GraphNode = {
      name: this.name(`${outputs[0] ?? opType}_node`),
      opType,
      domain,
      inputs,
      outputs,
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
    throw new QuantkitError(
      'QK_WEIGHT_NOT_FLOAT32',
      `initializer '${init.name}' is ${t.dtype}, not float32`,
      'activation quantization reads fp32 models; convert the model to fp32 first',
    );
  }
  return t.data;
}

/** Replaces input `from` by `to` on one node (every slot that reads it). */
export function rewireInput(node: GraphNode, from: string, to: string): void {
  for (let i = 0; i < node.inputs.length; i++) if (node.inputs[i] === from) node.inputs[i] = to;
}

import type { Graph, GraphNode } from '../../graph/model.js';
import { memoryInitializer } from '../../graph/model.js';
import { attrsFrom, type AttributeInput } from '../../graph/attributes.js';
import type { Tensor } from '../../tensor/tensor.js';

/** Small graph-building helpers shared by the weight-only handlers. */

export function addInitializer(graph: Graph, name: string, tensor: Tensor): string {
  graph.initializers.set(name, memoryInitializer(name, tensor));
  return name;
}

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attributes: Record<string, AttributeInput> = {},
  domain = '',
): GraphNode {
  return {
    name,
    opType,
    domain,
    inputs,
    outputs,
    attributes: attrsFrom(attributes),
  };
}

// The typed readers live in graph/attributes.ts; re-exported here for the handlers that import them from this module.
export { floatAttr, intAttr } from '../../graph/attributes.js';

/** Replaces every read of `from` in `nodes` (only those) by `to`. */
export function rewireInputs(nodes: readonly GraphNode[], from: string, to: string): void {
  for (const n of nodes) n.inputs = n.inputs.map((i) => (i === from ? to : i));
}

/** True if some node of the graph (or a graph output) still reads `value`. */
export function isRead(graph: Graph, value: string): boolean {
  if (graph.outputs.some((o) => o.name === value)) return true;
  return graph.nodes.some((n) => n.inputs.includes(value));
}

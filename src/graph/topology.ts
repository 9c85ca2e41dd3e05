import { QuantkitError } from '../errors.js';
import type { Graph, GraphNode } from './model.js';

/** Which node produces each value (graph inputs and initializers have none). */
export function producers(graph: Graph): Map<string, GraphNode> {
  const map = new Map<string, GraphNode>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) map.set(o, n);
  return map;
}

/** Which nodes read each value, in node order (a node appears once per input slot it uses). */
export function consumers(graph: Graph): Map<string, GraphNode[]> {
  const map = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      const list = map.get(i);
      if (list) list.push(n);
      else map.set(i, [n]);
    }
  }
  return map;
}

/**
 * Nodes in an order where every value is produced before it is read (Kahn's algorithm, stable:
 * ties keep file order). A cycle or a value read but never defined is a named error.
 */
export function topologicalOrder(graph: Graph): GraphNode[] {
  const defined = new Set<string>([...graph.initializers.keys(), ...graph.inputs.map((v) => v.name), '']);
  const producedBy = producers(graph);
  const pending = new Map<GraphNode, number>();
  const waiting = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) {
    let missing = 0;
    for (const i of new Set(n.inputs)) {
      if (defined.has(i)) continue;
      if (!producedBy.has(i)) {
        throw new QuantkitError(
          'QK_GRAPH_UNDEFINED_VALUE',
          `node '${n.name}' (${n.opType}) reads '${i}', which no node, input or initializer defines`,
          'the model is corrupt or truncated; re-export it',
        );
      }
      missing++;
      const list = waiting.get(i);
      if (list) list.push(n);
      else waiting.set(i, [n]);
    }
    pending.set(n, missing);
  }
  const ready = graph.nodes.filter((n) => pending.get(n) === 0);
  const order: GraphNode[] = [];
  for (let k = 0; k < ready.length; k++) {
    const n = ready[k] as GraphNode;
    order.push(n);
    for (const o of n.outputs) {
      for (const m of waiting.get(o) ?? []) {
        const left = (pending.get(m) as number) - 1;
        pending.set(m, left);
        if (left === 0) ready.push(m);
      }
      waiting.delete(o);
    }
  }
  if (order.length !== graph.nodes.length) {
    const stuck = graph.nodes
      .filter((n) => (pending.get(n) ?? 0) > 0)
      .slice(0, 3)
      .map((n) => `'${n.name}' (${n.opType})`);
    throw new QuantkitError(
      'QK_GRAPH_CYCLE',
      `the graph has a cycle through ${stuck.join(', ')}`,
      'ONNX graphs must be acyclic; the model is corrupt',
    );
  }
  return order;
}

/** Removes nodes whose outputs reach no graph output, and initializers nothing reads. */
export function removeDeadNodes(graph: Graph): void {
  const live = new Set(graph.outputs.map((v) => v.name));
  const keep = new Set<GraphNode>();
  for (const n of [...topologicalOrder(graph)].reverse()) {
    if (n.outputs.some((o) => live.has(o))) {
      keep.add(n);
      for (const i of n.inputs) live.add(i);
    }
  }
  graph.nodes = graph.nodes.filter((n) => keep.has(n));
  for (const name of [...graph.initializers.keys()]) if (!live.has(name)) graph.initializers.delete(name);
}

/** A value name not yet used in the graph, derived from `base`. */
export function uniqueName(graph: Graph, base: string, taken: Set<string> = usedNames(graph)): string {
  let name = base;
  for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
  taken.add(name);
  return name;
}

export function usedNames(graph: Graph): Set<string> {
  const names = new Set<string>([
    ...graph.initializers.keys(),
    ...graph.inputs.map((v) => v.name),
    ...graph.outputs.map((v) => v.name),
  ]);
  for (const n of graph.nodes) {
    for (const v of n.inputs) names.add(v);
    for (const v of n.outputs) names.add(v);
    if (n.name) names.add(n.name);
  }
  return names;
}

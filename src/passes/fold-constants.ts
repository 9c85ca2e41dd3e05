import { AttributeReader, nodeLabel } from '../graph/attributes.js';
import { memoryInitializer, type Graph, type GraphNode } from '../graph/model.js';
import { removeDeadNodes, topologicalOrder } from '../graph/topology.js';
import { defaultRegistry, type OpRegistry } from '../interp/registry.js';
import type { Tensor } from '../tensor/tensor.js';

/*
 * Folds constant subgraphs that feed weights: a Transpose/Reshape/Cast/Identity/Unsqueeze/Squeeze/
 * Mul/Add whose inputs are all initializers is evaluated once with the reference interpreter and
 * its output becomes an initializer (exporters emit `MatMul(x, Transpose(W))` for nn.Linear, which
 * hides W's real layout from the weight quantizer). Ops the interpreter does not run are left as
 * nodes. Afterwards nodes and initializers nothing reads any more are removed.
 */

export const FOLDABLE_OPS: readonly string[] = [
  'Transpose',
  'Reshape',
  'Cast',
  'Identity',
  'Unsqueeze',
  'Squeeze',
  'Mul',
  'Add',
];

export interface FoldResult {
  /** Nodes replaced by initializers, by name (or output when unnamed). */
  folded: string[];
  /** Foldable nodes left in place because the interpreter lacks the op. */
  skipped: string[];
}

export function foldConstants(graph: Graph, opset: number, registry: OpRegistry = defaultRegistry()): FoldResult {
  const folded: string[] = [];
  const skipped: string[] = [];
  const graphInputs = new Set(graph.inputs.map((v) => v.name));
  const done = new Set<GraphNode>();
  for (const node of topologicalOrder(graph)) {
    if (node.domain !== '' || !FOLDABLE_OPS.includes(node.opType)) continue;
    const present = node.inputs.filter((i) => i !== '');
    // An initializer that is also a graph input can be overridden at run time: not a constant.
    if (present.length === 0 || !present.every((i) => graph.initializers.has(i) && !graphInputs.has(i))) continue;
    const label = nodeLabel(node);
    let outputs: Tensor[];
    if (node.opType === 'Identity') {
      outputs = [graph.initializers.get(present[0] as string)!.load()];
    } else {
      const impl = registry.get(node.opType);
      if (!impl) {
        skipped.push(node.name || (node.outputs[0] ?? '?'));
        continue;
      }
      const args = node.inputs.map((i) => (i === '' ? undefined : graph.initializers.get(i)!.load()));
      const attrs = new AttributeReader(node.attributes, label);
      outputs = impl(args, { attrs, opset, where: label });
    }
    node.outputs.forEach((name, k) => {
      const t = outputs[k];
      if (name && t)
        graph.initializers.set(name, memoryInitializer(name, { dtype: t.dtype, dims: t.dims, data: t.data }));
    });
    done.add(node);
    folded.push(node.name || (node.outputs[0] ?? '?'));
  }
  if (done.size > 0) {
    graph.nodes = graph.nodes.filter((n) => !done.has(n));
    for (const name of graph.valueInfo.keys()) if (graph.initializers.has(name)) graph.valueInfo.delete(name);
  }
  removeDeadNodes(graph);
  return { folded, skipped };
}

import type { Graph, GraphNode } from '../../graph/model.js';
import { topologicalOrder } from '../../graph/topology.js';
import { dtypeFromOnnx, type DType } from '../../tensor/dtype.js';
import { intAttr } from '../../graph/attributes.js';

/**
 * Element type of every value, propagated through the graph by each op's type rule (ONNX
 * Operators.md type constraints): enough to know which values are float32, which is all the
 * fp16 conversion needs. Unknown ops take the type of their first typed input.
 */
export function inferElemTypes(graph: Graph): Map<string, DType> {
  const types = new Map<string, DType>();
  for (const v of graph.inputs) if (v.dtype) types.set(v.name, v.dtype);
  for (const [name, init] of graph.initializers) types.set(name, init.dtype);
  for (const [name, v] of graph.valueInfo) if (v.dtype) types.set(name, v.dtype);
  for (const n of topologicalOrder(graph)) {
    const outs = outputTypes(n, (i) => {
      const name = n.inputs[i];
      return name ? types.get(name) : undefined;
    });
    n.outputs.forEach((o, k) => {
      const t = outs[k];
      if (o && t && !types.has(o)) types.set(o, t);
    });
  }
  return types;
}

function outputTypes(n: GraphNode, input: (i: number) => DType | undefined): (DType | undefined)[] {
  const first = n.inputs.map((_, i) => input(i)).find((t) => t !== undefined);
  switch (n.opType) {
    case 'Cast': {
      const to = intAttr(n, 'to');
      return [to !== undefined ? dtypeFromOnnx(to) : undefined];
    }
    case 'CastLike':
      return [input(1)];
    case 'Shape':
    case 'Size':
    case 'NonZero':
    case 'ArgMax':
    case 'ArgMin':
      return ['int64'];
    case 'Equal':
    case 'Less':
    case 'Greater':
    case 'LessOrEqual':
    case 'GreaterOrEqual':
    case 'Not':
    case 'And':
    case 'Or':
    case 'Xor':
    case 'IsNaN':
    case 'IsInf':
      return ['bool'];
    case 'ConstantOfShape':
    case 'Constant': {
      const a = n.attributes[0];
      if (!a) return ['float32'];
      return [a.kind === 'tensor' ? a.value.dtype : a.name.startsWith('value_int') ? 'int64' : 'float32'];
    }
    case 'TopK':
      return [first, 'int64'];
    case 'MaxPool':
      return [first, 'int64'];
    case 'Dropout':
      return [first, 'bool'];
    case 'Where':
      return [input(1)];
    case 'QuantizeLinear':
      return [input(2) ?? 'uint8'];
    case 'DequantizeLinear':
      return [input(1)];
    case 'DynamicQuantizeLinear':
      return ['uint8', 'float32', 'uint8'];
    case 'MatMulInteger':
    case 'ConvInteger':
      return ['int32'];
    case 'GatherBlockQuantized': // com.microsoft: (data u8/int4, indices, scales T) → T
      return [input(2)];
    case 'OneHot':
      return [input(2)];
    default:
      return n.outputs.map(() => first);
  }
}

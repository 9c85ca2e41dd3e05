import { QuantkitError } from '../errors.js';
import { dtypeFromOnnx } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { attributeValue } from '../io/onnx/attribute.js';
import type { ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../io/onnx/proto.js';
import { tensorFromProto, type TensorFromProtoOptions } from '../io/onnx/tensor.js';
import type { Dim, Graph, GraphNode, Initializer, Model, ValueInfo } from './model.js';
import { memoryInitializer } from './model.js';

export interface FromOnnxOptions {
  /** Reads external-data tensors (see io/onnx/external); without it such tensors fail on load. */
  external?: TensorFromProtoOptions['external'];
  /** Label for error messages, usually the file path. */
  label?: string;
}

function safeNumber(v: bigint, what: string, label: string): number {
  if (v < BigInt(Number.MIN_SAFE_INTEGER) || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new QuantkitError('QK_ONNX_BAD_FIELD', `${label}: ${what} ${v} is out of range`, 'the model is corrupt; re-export it');
  }
  return Number(v);
}

function protoInitializer(p: TensorProto, opts: FromOnnxOptions): Initializer {
  const where = `initializer '${p.name}'`;
  const dtype = dtypeFromOnnx(p.dataType, where);
  const dims = p.dims.map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new QuantkitError('QK_TENSOR_BAD_DIMS', `${where} has dimension ${d}`, 'tensor dims must be non-negative; the file is corrupt');
    }
    return Number(d);
  });
  const external = opts.external;
  return {
    name: p.name,
    dtype,
    dims,
    source: p,
    load: () => tensorFromProto(p, where, external ? { external } : {}),
  };
}

function valueInfoFrom(v: ValueInfoProto): ValueInfo {
  const tt = v.type?.value.case === 'tensorType' ? v.type.value.value : undefined;
  const dtype = tt && tt.elemType !== 0 ? dtypeFromOnnx(tt.elemType, `value '${v.name}'`) : undefined;
  const dims: Dim[] | undefined = tt?.shape
    ? tt.shape.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null))
    : undefined;
  return { name: v.name, dtype, dims };
}

/**
 * A Constant node's value as a tensor. Exporters such as paddle2onnx keep every weight in
 * Constant nodes; lifting them to initializers lets every pass treat weights one way.
 */
function constantValue(node: NodeProto, where: string): Tensor | undefined {
  const attr = node.attribute[0];
  if (node.attribute.length !== 1 || !attr) return undefined;
  const v = attributeValue(attr, where);
  switch (attr.name) {
    case 'value': return v as Tensor;
    case 'value_float': return { dtype: 'float32', dims: [], data: Float32Array.of(v as number) };
    case 'value_floats': return { dtype: 'float32', dims: [(v as number[]).length], data: Float32Array.from(v as number[]) };
    case 'value_int': return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v as number)) };
    case 'value_ints': return { dtype: 'int64', dims: [(v as number[]).length], data: BigInt64Array.from(v as number[], (x) => BigInt(x)) };
    default: return undefined; // sparse_value, value_string(s): left as nodes
  }
}

export function modelFromProto(proto: ModelProto, opts: FromOnnxOptions = {}): Model {
  const label = opts.label ?? '<model>';
  const g = proto.graph;
  if (!g) throw new QuantkitError('QK_MODEL_NO_GRAPH', `${label} has no graph`, 'is this an ONNX model file?');

  const initializers = new Map<string, Initializer>();
  for (const p of g.initializer) {
    if (!p.name) throw new QuantkitError('QK_GRAPH_UNNAMED_TENSOR', `${label}: an initializer has no name`, 'the model is corrupt; re-export it');
    if (initializers.has(p.name)) throw new QuantkitError('QK_GRAPH_DUPLICATE_NAME', `${label}: initializer '${p.name}' is defined twice`, 'the model is corrupt; re-export it');
    initializers.set(p.name, protoInitializer(p, opts));
  }

  const nodes: GraphNode[] = [];
  for (const [i, n] of g.node.entries()) {
    const where = `node '${n.name || `#${i}`}' (${n.opType})`;
    if (n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx') && n.output.length === 1) {
      const value = constantValue(n, where);
      const out = n.output[0] as string;
      if (value) {
        if (initializers.has(out)) throw new QuantkitError('QK_GRAPH_DUPLICATE_NAME', `${label}: '${out}' is both an initializer and a Constant output`, 'the model is corrupt; re-export it');
        initializers.set(out, memoryInitializer(out, value));
        continue;
      }
    }
    nodes.push({ name: n.name, opType: n.opType, domain: n.domain === 'ai.onnx' ? '' : n.domain, inputs: [...n.input], outputs: [...n.output], attributes: [...n.attribute] });
  }

  const opsets = new Map<string, number>();
  for (const o of proto.opsetImport) opsets.set(o.domain === 'ai.onnx' ? '' : o.domain, safeNumber(o.version, 'opset version', label));

  const graph: Graph = {
    name: g.name,
    nodes,
    initializers,
    // Before IR 4 every initializer was also a graph input; those are not real inputs.
    inputs: g.input.filter((v) => !initializers.has(v.name)).map(valueInfoFrom),
    outputs: g.output.map(valueInfoFrom),
    valueInfo: new Map(g.valueInfo.map((v) => [v.name, valueInfoFrom(v)])),
  };
  return {
    irVersion: safeNumber(proto.irVersion, 'ir_version', label),
    opsets,
    producerName: proto.producerName,
    producerVersion: proto.producerVersion,
    domain: proto.domain,
    modelVersion: safeNumber(proto.modelVersion, 'model_version', label),
    docString: proto.docString,
    metadata: proto.metadataProps.map((p) => [p.key, p.value]),
    graph,
  };
}

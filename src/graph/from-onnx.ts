import { isQuantkitError, QuantkitError } from '../errors.js';
import { dtypeFromOnnx } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { attributeValue } from '../io/onnx/attribute.js';
import { parseExternalDataRef } from '../io/onnx/external.js';
import {
  AttributeProto_AttributeType as AT,
  TensorProto_DataLocation,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../io/onnx/proto.js';
import { tensorFromProto, type TensorFromProtoOptions } from '../io/onnx/tensor.js';
import type { Attribute } from './attributes.js';
import type { Dim, Graph, GraphNode, Initializer, Model, SourceTensor, ValueInfo } from './model.js';
import { memoryInitializer } from './model.js';

export interface FromOnnxOptions {
  /** Reads external-data tensors (see io/onnx/external); without it such tensors fail on load. */
  external?: TensorFromProtoOptions['external'];
  /** Label for error messages, usually the file path. */
  label?: string;
}

function safeNumber(v: bigint, what: string, label: string): number {
  if (v < BigInt(Number.MIN_SAFE_INTEGER) || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new QuantkitError(
      'QK_ONNX_BAD_FIELD',
      `${label}: ${what} ${v} is out of range`,
      'the model is corrupt; re-export it',
    );
  }
  return Number(v);
}

function protoInitializer(p: TensorProto, opts: FromOnnxOptions): Initializer {
  const where = `initializer '${p.name}'`;
  const dtype = dtypeFromOnnx(p.dataType, where);
  const dims = p.dims.map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_DIMS',
        `${where} has dimension ${d}`,
        'tensor dims must be non-negative; the file is corrupt',
      );
    }
    return Number(d);
  });
  const external = opts.external;
  return {
    name: p.name,
    dtype,
    dims,
    source: p as unknown as SourceTensor,
    load: () => tensorFromProto(p, where, external ? { external } : {}),
    externalData: () => {
      if (p.dataLocation !== TensorProto_DataLocation.EXTERNAL) return undefined;
      const ref = parseExternalDataRef(p);
      return { location: ref.location, offset: ref.offset };
    },
  };
}

/** The AttributeProto each attribute was read from: graph/to-onnx.ts writes an unchanged one back as read. */
const attributeSources = new WeakMap<Attribute, AttributeProto>();

/** The TensorProto an unchanged initializer was read from (to write it back as it was), or undefined. */
export function sourceProto(init: Initializer): TensorProto | undefined {
  return init.source as unknown as TensorProto | undefined;
}

export function attributeSource(a: Attribute): AttributeProto | undefined {
  return attributeSources.get(a);
}

/** Kinds the IR does not model: carried opaque, written back from their proto. */
const OPAQUE_KINDS: Partial<Record<AT, string>> = {
  [AT.GRAPH]: 'a graph',
  [AT.GRAPHS]: 'a list of graphs',
  [AT.SPARSE_TENSOR]: 'a sparse tensor',
  [AT.SPARSE_TENSORS]: 'a list of sparse tensors',
  [AT.TYPE_PROTO]: 'a type proto',
  [AT.TYPE_PROTOS]: 'a list of type protos',
};

/**
 * An AttributeProto as a typed attribute. A value that does not decode (no type, invalid UTF-8, a
 * tensor of an unknown type ...) is kept opaque rather than refused here: a pass that never reads
 * it still writes it back unchanged, and one that reads it gets a named error.
 */
function attributeFrom(a: AttributeProto, where: string): Attribute {
  const opaque = OPAQUE_KINDS[a.type];
  let attr: Attribute;
  if (opaque) {
    attr = { name: a.name, kind: 'opaque', found: opaque };
  } else {
    try {
      const v = attributeValue(a, where);
      switch (a.type) {
        case AT.INT:
          attr = { name: a.name, kind: 'int', value: v as number | bigint };
          break;
        case AT.FLOAT:
          attr = { name: a.name, kind: 'float', value: v as number };
          break;
        case AT.STRING:
          attr = { name: a.name, kind: 'string', value: v as string };
          break;
        case AT.TENSOR:
          attr = { name: a.name, kind: 'tensor', value: v as Tensor };
          break;
        case AT.INTS:
          attr = { name: a.name, kind: 'ints', value: v as (number | bigint)[] };
          break;
        case AT.FLOATS:
          attr = { name: a.name, kind: 'floats', value: v as number[] };
          break;
        case AT.STRINGS:
          attr = { name: a.name, kind: 'strings', value: v as string[] };
          break;
        default:
          attr = { name: a.name, kind: 'tensors', value: v as Tensor[] };
          break; // AT.TENSORS: attributeValue refuses other types
      }
    } catch (e) {
      if (!isQuantkitError(e)) throw e;
      attr = { name: a.name, kind: 'opaque', found: `a value that does not decode (${e.message})` };
    }
  }
  attributeSources.set(attr, a);
  return attr;
}

function valueInfoFrom(v: ValueInfoProto): ValueInfo {
  const tt = v.type?.value.case === 'tensorType' ? v.type.value.value : undefined;
  const dtype = tt && tt.elemType !== 0 ? dtypeFromOnnx(tt.elemType, `value '${v.name}'`) : undefined;
  const dims: Dim[] | undefined = tt?.shape
    ? tt.shape.dim.map((d) =>
        d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null,
      )
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
    case 'value':
      return v as Tensor;
    case 'value_float':
      return { dtype: 'float32', dims: [], data: Float32Array.of(v as number) };
    case 'value_floats':
      return { dtype: 'float32', dims: [(v as number[]).length], data: Float32Array.from(v as number[]) };
    case 'value_int':
      return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v as number)) };
    case 'value_ints':
      return {
        dtype: 'int64',
        dims: [(v as number[]).length],
        data: BigInt64Array.from(v as number[], (x) => BigInt(x)),
      };
    default:
      return undefined; // sparse_value, value_string(s): left as nodes
  }
}

export function modelFromProto(proto: ModelProto, opts: FromOnnxOptions = {}): Model {
  const label = opts.label ?? '<model>';
  const g = proto.graph;
  if (!g) throw new QuantkitError('QK_MODEL_NO_GRAPH', `${label} has no graph`, 'is this an ONNX model file?');

  const initializers = new Map<string, Initializer>();
  for (const p of g.initializer) {
    if (!p.name)
      throw new QuantkitError(
        'QK_GRAPH_UNNAMED_TENSOR',
        `${label}: an initializer has no name`,
        'the model is corrupt; re-export it',
      );
    if (initializers.has(p.name))
      throw new QuantkitError(
        'QK_GRAPH_DUPLICATE_NAME',
        `${label}: initializer '${p.name}' is defined twice`,
        'the model is corrupt; re-export it',
      );
    initializers.set(p.name, protoInitializer(p, opts));
  }

  const nodes: GraphNode[] = [];
  for (const [i, n] of g.node.entries()) {
    const where = `node '${n.name || `#${i}`}' (${n.opType})`;
    if (n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx') && n.output.length === 1) {
      const value = constantValue(n, where);
      const out = n.output[0] as string;
      if (value) {
        if (initializers.has(out))
          throw new QuantkitError(
            'QK_GRAPH_DUPLICATE_NAME',
            `${label}: '${out}' is both an initializer and a Constant output`,
            'the model is corrupt; re-export it',
          );
        initializers.set(out, memoryInitializer(out, value));
        continue;
      }
    }
    nodes.push({
      name: n.name,
      opType: n.opType,
      domain: n.domain === 'ai.onnx' ? '' : n.domain,
      inputs: [...n.input],
      outputs: [...n.output],
      attributes: n.attribute.map((a) => attributeFrom(a, where)),
    });
  }

  const opsets = new Map<string, number>();
  for (const o of proto.opsetImport)
    opsets.set(o.domain === 'ai.onnx' ? '' : o.domain, safeNumber(o.version, 'opset version', label));

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

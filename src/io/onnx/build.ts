import { onnxDataType, type DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { makeAttribute, type AttributeInput } from './attribute.js';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  create,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from './proto.js';
import { tensorToProto } from './tensor.js';

/**
 * A tiny model builder for tests and embedded demo models: enough to write a graph in a few
 * lines, not a general graph IR (that is graph/).
 */

export interface NodeSpec {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  /** Plain values go through makeAttribute (integers become INT); pass an AttributeProto for full control. */
  readonly attributes?: Readonly<Record<string, AttributeInput | AttributeProto>>;
}

export interface ValueSpec {
  readonly name: string;
  /** undefined: element type unknown (written as 0, UNDEFINED). */
  readonly dtype: DType | undefined;
  /** Numbers are fixed sizes, strings symbolic (dim_param), null unknown. Omit for unknown rank. */
  readonly dims?: readonly (number | string | null)[];
}

export interface ModelSpec {
  readonly nodes: readonly (NodeSpec | NodeProto)[];
  readonly inputs: readonly ValueSpec[];
  readonly outputs: readonly ValueSpec[];
  /** Keyed by initializer name (the tensor's own name is ignored). */
  readonly initializers?: Readonly<Record<string, Tensor>>;
  /** Operator set versions by domain; '' is the default ONNX domain. Default { '': 21 }. */
  readonly opsets?: Readonly<Record<string, number>>;
  /** Default 10, which ONNX Runtime 1.16 and later load. */
  readonly irVersion?: number;
  readonly graphName?: string;
}

function isAttributeProto(v: unknown): v is AttributeProto {
  return typeof v === 'object' && v !== null && (v as { $typeName?: string }).$typeName === 'onnx.AttributeProto';
}

function isNodeProto(v: NodeSpec | NodeProto): v is NodeProto {
  return (v as { $typeName?: string }).$typeName === 'onnx.NodeProto';
}

export function makeNode(spec: NodeSpec): NodeProto {
  const attribute = Object.entries(spec.attributes ?? {}).map(([name, v]) =>
    isAttributeProto(v) ? v : makeAttribute(name, v),
  );
  return create(NodeProtoSchema, {
    opType: spec.opType,
    input: [...spec.inputs],
    output: [...spec.outputs],
    name: spec.name ?? '',
    domain: spec.domain ?? '',
    attribute,
  });
}

export function makeValueInfo(spec: ValueSpec): ValueInfoProto {
  const tensorType = create(TypeProto_TensorSchema, { elemType: spec.dtype ? onnxDataType(spec.dtype) : 0 });
  if (spec.dims) {
    tensorType.shape = create(TensorShapeProtoSchema, {
      dim: spec.dims.map((d) =>
        create(TensorShapeProto_DimensionSchema, {
          value:
            typeof d === 'number'
              ? { case: 'dimValue', value: BigInt(d) }
              : typeof d === 'string'
                ? { case: 'dimParam', value: d }
                : { case: undefined },
        }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, {
    name: spec.name,
    type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }),
  });
}

export function makeModel(spec: ModelSpec): ModelProto {
  const graph = create(GraphProtoSchema, {
    name: spec.graphName ?? 'quantkit',
    node: spec.nodes.map((n) => (isNodeProto(n) ? n : makeNode(n))),
    input: spec.inputs.map(makeValueInfo),
    output: spec.outputs.map(makeValueInfo),
    initializer: Object.entries(spec.initializers ?? {}).map(([name, t]) => {
      const p = tensorToProto(t);
      p.name = name;
      return p;
    }),
  });
  const opsets = spec.opsets ?? { '': 21 };
  return create(ModelProtoSchema, {
    irVersion: BigInt(spec.irVersion ?? 10),
    producerName: 'quantkit',
    opsetImport: Object.entries(opsets).map(([domain, version]) =>
      create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }),
    ),
    graph,
  });
}

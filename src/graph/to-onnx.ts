import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  create,
  type AttributeProto,
  type ModelProto,
  type TensorProto,
  type ValueInfoProto,
} from '../io/onnx/proto.js';
import { makeAttribute, type AttributeInput } from '../io/onnx/attribute.js';
import { makeValueInfo } from '../io/onnx/build.js';
import { tensorToProto } from '../io/onnx/tensor.js';
import type { Attribute } from './attributes.js';
import { attributeSource, sourceProto } from './from-onnx.js';
import type { Initializer, Model, ValueInfo } from './model.js';

/** A value's type and shape; dims undefined = rank unknown (io/onnx/build.ts writes both forms). */
function valueInfoProto(v: ValueInfo): ValueInfoProto {
  return makeValueInfo(v.dims ? { name: v.name, dtype: v.dtype, dims: v.dims } : { name: v.name, dtype: v.dtype });
}

/**
 * An initializer as a TensorProto. Unchanged in-file tensors are passed through as read (their
 * bytes stay identical); external ones are re-read so the result is self-contained — the file
 * writer decides afterwards which tensors go to external data.
 */
export function initializerProto(init: Initializer): TensorProto {
  const src = sourceProto(init);
  if (src && src.dataLocation !== TensorProto_DataLocation.EXTERNAL) return src;
  const p = tensorToProto(init.load());
  p.name = init.name;
  return p;
}

/** An attribute as an AttributeProto: one read from the file and left unchanged goes back as read. */
function attributeProto(a: Attribute): AttributeProto {
  const source = attributeSource(a);
  if (source) return source;
  // Opaque attributes come only from from-onnx, which records their source.
  if (a.kind === 'opaque') throw new Error(`attribute '${a.name}' is opaque but has no source proto`);
  return makeAttribute(a.name, a.value as AttributeInput, a.kind);
}

export function modelToProto(model: Model): ModelProto {
  const g = model.graph;
  const graph = create(GraphProtoSchema, {
    name: g.name,
    node: g.nodes.map((n) =>
      create(NodeProtoSchema, {
        name: n.name,
        opType: n.opType,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: n.attributes.map(attributeProto),
      }),
    ),
    initializer: [...g.initializers.values()].map(initializerProto),
    input: g.inputs.map(valueInfoProto),
    output: g.outputs.map(valueInfoProto),
    valueInfo: [...g.valueInfo.values()].map(valueInfoProto),
  });
  return create(ModelProtoSchema, {
    irVersion: BigInt(model.irVersion),
    opsetImport: [...model.opsets].map(([domain, version]) =>
      create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }),
    ),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: BigInt(model.modelVersion),
    docString: model.docString,
    metadataProps: model.metadata.map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    graph,
  });
}

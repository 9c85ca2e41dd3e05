import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProtoSchema, type ModelProto, type TensorProto } from 'onnx-buf';
import { QuantkitError } from '../../errors.js';

/*
 * The one door to the generated ONNX schema: the rest of quantkit imports these names from here,
 * never from 'onnx-buf', so a schema upgrade touches one file.
 */
export {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_SegmentSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
export type {
  AttributeProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetIdProto,
  SparseTensorProto,
  StringStringEntryProto,
  TensorProto,
  TensorShapeProto,
  TypeProto,
  ValueInfoProto,
} from 'onnx-buf';
export { create, clone, equals, isFieldSet } from '@bufbuild/protobuf';

const PARSE_HINT =
  'the file is truncated, corrupt, or not ONNX; re-export it (e.g. torch.onnx.export) or check the path';

function parseError(label: string, what: string, reason: string): QuantkitError {
  return new QuantkitError('QK_ONNX_PARSE', `${label}: not a valid ONNX ${what}: ${reason}`, PARSE_HINT);
}

function reasonOf(e: unknown): string {
  // RangeError covers stack exhaustion and absurd lengths inside the wire reader.
  return e instanceof Error ? e.message : String(e);
}

/**
 * Parses a serialized ModelProto. Protobuf is lenient (random bytes often parse as unknown
 * fields), so the fields onnx.proto says MUST be present are checked too: ir_version, at least
 * one opset_import, and a graph. That also catches most files cut at a field boundary.
 */
export function decodeModel(bytes: Uint8Array, label = '<model>'): ModelProto {
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw parseError(label, 'model', reasonOf(e));
  }
  if (model.irVersion <= 0n)
    throw parseError(label, 'model', 'ir_version is missing (onnx.proto: "This field MUST be present")');
  if (model.opsetImport.length === 0)
    throw parseError(
      label,
      'model',
      'no opset_import (onnx.proto: every ModelProto MUST import at least one operator set)',
    );
  if (!model.graph) throw parseError(label, 'model', 'no graph');
  return model;
}

export function encodeModel(model: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, model);
}

/** Parses a serialized TensorProto (the `.pb` files of ONNX test data sets). */
export function decodeTensorProto(bytes: Uint8Array, label = '<tensor>'): TensorProto {
  let tensor: TensorProto;
  try {
    tensor = fromBinary(TensorProtoSchema, bytes);
  } catch (e) {
    throw parseError(label, 'tensor', reasonOf(e));
  }
  // data_type MUST be a valid DataType (onnx.proto); 0 = UNDEFINED means the bytes were not a tensor.
  if (tensor.dataType === 0) throw parseError(label, 'tensor', 'data_type is missing or UNDEFINED');
  return tensor;
}

export function encodeTensorProto(t: TensorProto): Uint8Array {
  return toBinary(TensorProtoSchema, t);
}

import { QuantkitError } from '../errors.js';

/**
 * Element types, spelled as ONNX spells them in lower case so a reader of the spec finds them.
 * `onnx` is the TensorProto.DataType number; `bits` the storage width of one element.
 */
export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'float8e4m3fn'
  | 'float8e4m3fnuz'
  | 'float8e5m2'
  | 'float8e5m2fnuz'
  | 'float8e8m0'
  | 'float4e2m1'
  | 'int2'
  | 'uint2'
  | 'int4'
  | 'uint4'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

export interface DTypeInfo {
  readonly name: DType;
  readonly onnx: number;
  readonly bits: number;
  readonly kind: 'float' | 'int' | 'uint' | 'bool' | 'string';
}

// TensorProto.DataType numbers from onnx.proto (ONNX 1.20).
const TABLE: readonly DTypeInfo[] = [
  { name: 'float32', onnx: 1, bits: 32, kind: 'float' },
  { name: 'uint8', onnx: 2, bits: 8, kind: 'uint' },
  { name: 'int8', onnx: 3, bits: 8, kind: 'int' },
  { name: 'uint16', onnx: 4, bits: 16, kind: 'uint' },
  { name: 'int16', onnx: 5, bits: 16, kind: 'int' },
  { name: 'int32', onnx: 6, bits: 32, kind: 'int' },
  { name: 'int64', onnx: 7, bits: 64, kind: 'int' },
  { name: 'string', onnx: 8, bits: 0, kind: 'string' },
  { name: 'bool', onnx: 9, bits: 8, kind: 'bool' },
  { name: 'float16', onnx: 10, bits: 16, kind: 'float' },
  { name: 'float64', onnx: 11, bits: 64, kind: 'float' },
  { name: 'uint32', onnx: 12, bits: 32, kind: 'uint' },
  { name: 'uint64', onnx: 13, bits: 64, kind: 'uint' },
  { name: 'bfloat16', onnx: 16, bits: 16, kind: 'float' },
  { name: 'float8e4m3fn', onnx: 17, bits: 8, kind: 'float' },
  { name: 'float8e4m3fnuz', onnx: 18, bits: 8, kind: 'float' },
  { name: 'float8e5m2', onnx: 19, bits: 8, kind: 'float' },
  { name: 'float8e5m2fnuz', onnx: 20, bits: 8, kind: 'float' },
  { name: 'uint4', onnx: 21, bits: 4, kind: 'uint' },
  { name: 'int4', onnx: 22, bits: 4, kind: 'int' },
  { name: 'float4e2m1', onnx: 23, bits: 4, kind: 'float' },
  { name: 'float8e8m0', onnx: 24, bits: 8, kind: 'float' },
  { name: 'uint2', onnx: 25, bits: 2, kind: 'uint' },
  { name: 'int2', onnx: 26, bits: 2, kind: 'int' },
];

const BY_NAME = new Map(TABLE.map((d) => [d.name, d]));
const BY_ONNX = new Map(TABLE.map((d) => [d.onnx, d]));

export const ALL_DTYPES: readonly DType[] = TABLE.map((d) => d.name);

export function dtypeInfo(dtype: DType): DTypeInfo {
  const info = BY_NAME.get(dtype);
  if (!info)
    throw new QuantkitError(
      'QK_UNKNOWN_DTYPE',
      `unknown dtype '${String(dtype)}'`,
      `use one of ${ALL_DTYPES.join(', ')}`,
    );
  return info;
}

export function dtypeFromOnnx(code: number, where = 'tensor'): DType {
  const info = BY_ONNX.get(code);
  if (!info) {
    throw new QuantkitError(
      'QK_UNSUPPORTED_DTYPE',
      `${where} has ONNX data type ${code}, which quantkit does not support`,
      `supported types: ${TABLE.map((d) => `${d.name}=${d.onnx}`).join(', ')}`,
    );
  }
  return info.name;
}

export function onnxDataType(dtype: DType): number {
  return dtypeInfo(dtype).onnx;
}

export function isDType(s: string): s is DType {
  return BY_NAME.has(s as DType);
}

/** Bytes needed to store `count` elements, sub-byte types packed (two int4 per byte, four int2). */
export function storageBytes(dtype: DType, count: number): number {
  const { bits } = dtypeInfo(dtype);
  return Math.ceil((count * bits) / 8);
}

import { QuantkitError } from '../../errors.js';
import { packSubByte, unpackSubByte } from '../../formats/pack.js';
import { dtypeFromOnnx, dtypeInfo, onnxDataType, storageBytes, type DType } from '../../tensor/dtype.js';
import { allocData, elementCount, type Tensor, type TensorData } from '../../tensor/tensor.js';
import { TensorProtoSchema, TensorProto_DataLocation, create, type TensorProto } from './proto.js';

/**
 * TensorProto <-> Tensor for every quantkit dtype, following the field comments of onnx.proto
 * (ONNX 1.20): raw_data is fixed-width little-endian with 4-bit types packed two per byte and
 * 2-bit types four per byte, first element in the low bits; the typed fields are float_data,
 * int32_data (8/16-bit ints, bool, and the bit patterns of float16/bfloat16/float8 one per
 * entry; 4-bit types two per entry and 2-bit types four per entry, i.e. one packed byte each),
 * int64_data, double_data, uint64_data (uint32 and uint64) and string_data.
 */

export interface TensorFromProtoOptions {
  /**
   * Supplies the raw little-endian bytes of a tensor whose data lives outside the proto
   * (data_location EXTERNAL). Without it such tensors are refused: io/onnx does not read files.
   */
  external?: (p: TensorProto) => Uint8Array;
}

export interface TensorToProtoOptions {
  /** Store in raw_data (default) or in the typed field onnx.proto names for the dtype. */
  useRawData?: boolean;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** Which typed field carries a dtype when raw_data is not used (onnx.proto field comments). */
type TypedField = 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData';

function typedFieldOf(dtype: DType): TypedField {
  switch (dtype) {
    case 'float32':
      return 'floatData';
    case 'float64':
      return 'doubleData';
    case 'int64':
      return 'int64Data';
    case 'uint32':
    case 'uint64':
      return 'uint64Data';
    case 'string':
      return 'stringData';
    default:
      return 'int32Data';
  }
}

function describe(p: TensorProto, where: string | undefined): string {
  return where ?? (p.name ? `tensor '${p.name}'` : 'tensor');
}

function dimsOf(p: TensorProto, label: string): number[] {
  const dims: number[] = [];
  let count = 1;
  for (const d of p.dims) {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_DIMS',
        `${label} has dimension ${d} in dims [${p.dims.join(', ')}]`,
        'tensor dims must be non-negative integers; the file is corrupt or was written by a broken exporter',
      );
    }
    const n = Number(d);
    count *= n;
    if (!Number.isSafeInteger(count)) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_DIMS',
        `${label} has dims [${p.dims.join(', ')}] whose element count overflows`,
        'the file is corrupt or was written by a broken exporter',
      );
    }
    dims.push(n);
  }
  return dims;
}

function lengthError(
  label: string,
  dtype: DType,
  dims: readonly number[],
  field: string,
  have: number,
  need: number,
  unit: string,
): QuantkitError {
  return new QuantkitError(
    'QK_TENSOR_DATA_LENGTH',
    `${label} (${dtype}, dims [${dims.join(', ')}]) has ${have} ${unit} in ${field} but needs ${need}`,
    'the dims and the stored data disagree: the file is truncated or corrupt; re-export it',
  );
}

/** Decodes a TensorProto into a Tensor (one storage slot per element; see tensor/tensor.ts). */
export function tensorFromProto(p: TensorProto, where?: string, opts: TensorFromProtoOptions = {}): Tensor {
  const label = describe(p, where);
  const dtype = dtypeFromOnnx(p.dataType, label);
  const dims = dimsOf(p, label);
  if (p.segment) {
    throw new QuantkitError(
      'QK_TENSOR_BAD_FIELD',
      `${label} is one segment of a larger tensor`,
      'segmented TensorProtos are not supported; re-export the tensor whole',
    );
  }
  const count = elementCount(dims);
  const data = readData(p, dtype, dims, count, label, opts);
  return p.name ? { dtype, dims, data, name: p.name } : { dtype, dims, data };
}

function readData(
  p: TensorProto,
  dtype: DType,
  dims: readonly number[],
  count: number,
  label: string,
  opts: TensorFromProtoOptions,
): TensorData {
  if (p.dataLocation === TensorProto_DataLocation.EXTERNAL || p.externalData.length > 0) {
    if (!opts.external) {
      const location = p.externalData.find((e) => e.key === 'location')?.value ?? '?';
      throw new QuantkitError(
        'QK_EXTERNAL_DATA_UNRESOLVED',
        `${label} keeps its data in external file '${location}', which was not loaded`,
        'load the model with its external-data resolver (the model reader does this), or convert it to a single file',
      );
    }
    if (dtype === 'string') {
      throw new QuantkitError(
        'QK_TENSOR_BAD_FIELD',
        `${label} is a string tensor with external data`,
        'onnx.proto keeps strings in string_data only; the file is corrupt',
      );
    }
    return fromRaw(opts.external(p), dtype, dims, count, label, 'external data', true);
  }
  if (p.rawData.length > 0) {
    if (dtype === 'string') {
      throw new QuantkitError(
        'QK_TENSOR_BAD_FIELD',
        `${label} is a string tensor with raw_data`,
        'onnx.proto keeps strings in string_data only; the file is corrupt',
      );
    }
    return fromRaw(p.rawData, dtype, dims, count, label, 'raw_data');
  }
  const field = typedFieldOf(dtype);
  for (const other of ['floatData', 'int32Data', 'int64Data', 'doubleData', 'uint64Data', 'stringData'] as const) {
    if (other !== field && p[other].length > 0) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_FIELD',
        `${label} is ${dtype} but stores data in ${snake(other)}`,
        `onnx.proto stores ${dtype} in ${snake(field)} or raw_data; the file was written by a broken exporter`,
      );
    }
  }
  return fromTyped(p, dtype, dims, count, label);
}

// ---------------------------------------------------------------------------------------------
// raw_data

/**
 * `fresh`: raw came from the external-data reader. When it is a buffer of its own (offset 0, the
 * whole ArrayBuffer: a fresh read, nothing else shares it) on a little-endian host, the tensor's
 * storage is a typed view of it — a 64 MB weight costs one allocation and no copy.
 */
function fromRaw(
  raw: Uint8Array,
  dtype: DType,
  dims: readonly number[],
  count: number,
  label: string,
  field: string,
  fresh = false,
): TensorData {
  const need = storageBytes(dtype, count);
  if (raw.length !== need) throw lengthError(label, dtype, dims, field, raw.length, need, 'bytes');
  const { bits, kind } = dtypeInfo(dtype);
  if (bits === 4 || bits === 2) return unpackSubByte(raw, count, bits, kind === 'int');
  if (dtype === 'bool') {
    // onnx.proto: one byte per element, 1 for true; anything non-zero is read as true.
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i++) out[i] = raw[i] !== 0 ? 1 : 0;
    return out;
  }
  if (fresh && LITTLE_ENDIAN_HOST && raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength) {
    const empty = allocData(dtype, 0);
    if (empty instanceof Array) throw new Error('unreachable: strings have no raw form');
    const View = empty.constructor as new (
      buffer: ArrayBufferLike,
      byteOffset: number,
      length: number,
    ) => Exclude<TensorData, string[]>;
    return new View(raw.buffer, 0, count);
  }
  const out = allocData(dtype, count);
  if (out instanceof Array) throw new Error('unreachable: strings have no raw form');
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  outBytes.set(raw);
  if (!LITTLE_ENDIAN_HOST && bits > 8) swapBytes(outBytes, bits / 8);
  return out;
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

function toRaw(t: Tensor): Uint8Array {
  const { bits } = dtypeInfo(t.dtype);
  if (t.data instanceof Array) throw new Error('unreachable: strings have no raw form');
  if (bits === 4 || bits === 2) return packSubByte(t.data as ArrayLike<number>, bits);
  const copy = new Uint8Array(t.data.byteLength);
  copy.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  if (!LITTLE_ENDIAN_HOST && bits > 8) swapBytes(copy, bits / 8);
  return copy;
}

// ---------------------------------------------------------------------------------------------
// typed fields

/**
 * int32_data entries for types narrower than 32 bits: accept either the signed or the unsigned
 * reading of the width (exporters write int8 -1 as -1, float16 bit patterns as 0..65535), and
 * refuse anything wider, which would otherwise be truncated silently.
 */
function checkedNarrow(values: readonly number[], bits: number, label: string, dtype: DType): void {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** bits - 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (v < lo || v > hi) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_VALUE',
        `${label} (${dtype}) has int32_data[${i}] = ${v}, outside the ${bits}-bit range`,
        'the file is corrupt or was written by a broken exporter',
      );
    }
  }
}

function fromTyped(p: TensorProto, dtype: DType, dims: readonly number[], count: number, label: string): TensorData {
  const { bits, kind } = dtypeInfo(dtype);
  const field = typedFieldOf(dtype);
  const values = p[field];
  // Sub-byte types hold one packed byte per int32_data entry.
  const need = bits === 4 || bits === 2 ? storageBytes(dtype, count) : count;
  if (values.length !== need) throw lengthError(label, dtype, dims, snake(field), values.length, need, 'entries');
  switch (field) {
    case 'floatData':
      return Float32Array.from(p.floatData);
    case 'doubleData':
      return Float64Array.from(p.doubleData);
    case 'int64Data':
      return BigInt64Array.from(p.int64Data);
    case 'stringData': {
      const out = new Array<string>(count);
      for (let i = 0; i < count; i++) {
        try {
          out[i] = utf8Decoder.decode(p.stringData[i]);
        } catch {
          throw new QuantkitError(
            'QK_TENSOR_BAD_VALUE',
            `${label} has string_data[${i}] that is not valid UTF-8`,
            'onnx.proto requires UTF-8 strings; the file is corrupt',
          );
        }
      }
      return out;
    }
    case 'uint64Data': {
      if (dtype === 'uint64') return BigUint64Array.from(p.uint64Data);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) {
        const v = p.uint64Data[i] as bigint;
        if (v > 0xffffffffn)
          throw new QuantkitError(
            'QK_TENSOR_BAD_VALUE',
            `${label} (uint32) has uint64_data[${i}] = ${v}, outside the 32-bit range`,
            'the file is corrupt or was written by a broken exporter',
          );
        out[i] = Number(v);
      }
      return out;
    }
    case 'int32Data': {
      if (dtype === 'int32') return Int32Array.from(p.int32Data);
      if (bits === 4 || bits === 2) {
        checkedNarrow(p.int32Data, 8, label, dtype);
        return unpackSubByte(
          Uint8Array.from(p.int32Data, (v) => v & 0xff),
          count,
          bits,
          kind === 'int',
        );
      }
      checkedNarrow(p.int32Data, bits, label, dtype);
      if (dtype === 'bool') return Uint8Array.from(p.int32Data, (v) => (v !== 0 ? 1 : 0));
      const out = allocData(dtype, count);
      if (out instanceof Array || out instanceof BigInt64Array || out instanceof BigUint64Array)
        throw new Error(`unreachable: ${dtype} in int32_data`);
      // Typed-array stores wrap modulo 2^bits, mapping both accepted readings to the same bits.
      out.set(p.int32Data);
      return out;
    }
  }
}

const FIELD_NAMES: Record<TypedField, string> = {
  floatData: 'float_data',
  int32Data: 'int32_data',
  int64Data: 'int64_data',
  doubleData: 'double_data',
  uint64Data: 'uint64_data',
  stringData: 'string_data',
};

function snake(field: TypedField): string {
  return FIELD_NAMES[field];
}

/** Encodes a Tensor as a TensorProto; raw_data by default (strings always use string_data). */
export function tensorToProto(t: Tensor, opts: TensorToProtoOptions = {}): TensorProto {
  const count = elementCount(t.dims);
  if (t.data.length !== count) {
    throw new QuantkitError(
      'QK_TENSOR_SIZE_MISMATCH',
      `tensor${t.name ? ` '${t.name}'` : ''} of dims [${t.dims.join(', ')}] needs ${count} elements but has ${t.data.length}`,
      'check the dims and the data length agree',
    );
  }
  const p = create(TensorProtoSchema, {
    dims: t.dims.map((d) => BigInt(d)),
    dataType: onnxDataType(t.dtype),
    name: t.name ?? '',
  });
  const useRaw = (opts.useRawData ?? true) && t.dtype !== 'string';
  if (useRaw) {
    p.rawData = toRaw(t) as Uint8Array<ArrayBuffer>;
    return p;
  }
  const { bits } = dtypeInfo(t.dtype);
  const d = t.data;
  switch (typedFieldOf(t.dtype)) {
    case 'floatData':
      p.floatData = Array.from(d as Float32Array);
      break;
    case 'doubleData':
      p.doubleData = Array.from(d as Float64Array);
      break;
    case 'int64Data':
      p.int64Data = Array.from(d as BigInt64Array);
      break;
    case 'uint64Data':
      p.uint64Data =
        t.dtype === 'uint64' ? Array.from(d as BigUint64Array) : Array.from(d as Uint32Array, (v) => BigInt(v));
      break;
    case 'stringData':
      p.stringData = (d as string[]).map((s) => utf8Encoder.encode(s) as Uint8Array<ArrayBuffer>);
      break;
    case 'int32Data':
      // Sub-byte: one packed byte (0..255) per entry; wider: the value, or the unsigned bit pattern for floats.
      p.int32Data =
        bits === 4 || bits === 2
          ? Array.from(packSubByte(d as ArrayLike<number>, bits))
          : Array.from(d as ArrayLike<number>);
      break;
  }
  return p;
}

import { QuantkitError } from '../../errors.js';
import { dtypeInfo, storageBytes, type DType } from '../../tensor/dtype.js';
import { allocData, elementCount, type Tensor, type TensorData } from '../../tensor/tensor.js';
import { packSubByte, unpackSubByte } from '../../formats/pack.js';

/*
 * Tensor storage <-> the little-endian, row-major, sub-byte-packed bytes that safetensors (and
 * ONNX raw_data) hold. Typed arrays use host byte order; every engine quantkit runs on is little
 * endian, but a big-endian host gets an explicit swap instead of silently wrong numbers.
 */

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapInPlace(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a] as number;
      bytes[a] = bytes[b] as number;
      bytes[b] = t;
    }
  }
}

function subByteBits(dtype: DType): 2 | 4 | undefined {
  const { bits } = dtypeInfo(dtype);
  return bits === 2 || bits === 4 ? bits : undefined;
}

/**
 * Decodes `bytes` (exactly storageBytes(dtype, count) long) into fresh tensor storage. The
 * result never aliases `bytes`, so a caller may reuse its read buffer.
 */
export function tensorDataFromBytes(
  dtype: DType,
  dims: readonly number[],
  bytes: Uint8Array,
  where: string,
): TensorData {
  const count = elementCount(dims);
  const need = storageBytes(dtype, count);
  if (dtype === 'string') {
    throw new QuantkitError(
      'QK_UNSUPPORTED_DTYPE',
      `${where}: string tensors have no fixed-width byte form`,
      'store strings outside safetensors',
    );
  }
  if (bytes.length !== need) {
    throw new QuantkitError(
      'QK_TENSOR_DATA_LENGTH',
      `${where}: ${dtype} [${dims.join(', ')}] needs ${need} bytes but has ${bytes.length}`,
      'the file is truncated or its header is wrong; re-export it',
    );
  }
  const sub = subByteBits(dtype);
  if (sub !== undefined) {
    const { kind } = dtypeInfo(dtype);
    return unpackSubByte(bytes, count, sub, kind === 'int');
  }
  const copy = bytes.slice(); // own, 0-offset buffer: aligned for any typed-array view
  const width = dtypeInfo(dtype).bits / 8;
  if (!HOST_IS_LITTLE_ENDIAN && width > 1) swapInPlace(copy, width);
  const empty = allocData(dtype, 0);
  const Ctor = empty.constructor as new (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorData;
  return new Ctor(copy.buffer, 0, count);
}

/** Checks the storage class is the one tensor.ts prescribes for the dtype (same bytes per slot). */
export function assertStorageMatches(t: Tensor, where: string): void {
  const expected = allocData(t.dtype, 0);
  if (Array.isArray(t.data) || t.data.constructor !== expected.constructor) {
    throw new QuantkitError(
      'QK_TENSOR_STORAGE_MISMATCH',
      `${where}: ${t.dtype} tensor holds ${Array.isArray(t.data) ? 'string[]' : t.data.constructor.name}, expected ${expected.constructor.name}`,
      'build tensors with makeTensor/allocData',
    );
  }
  const count = elementCount(t.dims);
  if (t.data.length !== count) {
    throw new QuantkitError(
      'QK_TENSOR_SIZE_MISMATCH',
      `${where}: dims [${t.dims.join(', ')}] need ${count} elements but the data has ${t.data.length}`,
      'check the dims and the data length agree',
    );
  }
}

/**
 * The byte form of a tensor. On a little-endian host this is a view of the tensor's own memory
 * when no packing is needed (no copy), so do not mutate it.
 */
export function tensorDataToBytes(t: Tensor, where: string): Uint8Array {
  if (t.dtype === 'string') {
    throw new QuantkitError(
      'QK_UNSUPPORTED_DTYPE',
      `${where}: string tensors have no fixed-width byte form`,
      'store strings outside safetensors',
    );
  }
  assertStorageMatches(t, where);
  const data = t.data as Exclude<TensorData, string[]>;
  const sub = subByteBits(t.dtype);
  if (sub !== undefined) return packSubByte(data as Uint8Array | Int8Array, sub);
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const width = data.BYTES_PER_ELEMENT;
  if (HOST_IS_LITTLE_ENDIAN || width === 1) return view;
  const copy = view.slice();
  swapInPlace(copy, width);
  return copy;
}

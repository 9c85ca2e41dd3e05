import { QuantkitError, type ErrorCode } from '../../errors.js';
import { dtypeInfo, type DType } from '../../tensor/dtype.js';
import { elementCount, type Tensor } from '../../tensor/tensor.js';
import type { ByteSource } from '../source.js';
import { dtypeFromSafetensors, isKnownUnsupportedSafetensorsDType, SAFETENSORS_DTYPE_NAMES } from './dtypes.js';
import { JsonError, JsonNumber, parseStrictJson, type JsonObject, type JsonValue } from './strict-json.js';
import { tensorDataFromBytes } from './tensor-bytes.js';

/*
 * safetensors reader. The format (huggingface/safetensors README "Format" and the reference
 * reader `SafeTensors::read_metadata` + `Metadata::validate`, which is the de-facto spec):
 *   8 bytes  N, u64 little-endian
 *   N bytes  UTF-8 JSON object: { "__metadata__"?: {string: string},
 *                                 name: {"dtype", "shape", "data_offsets": [begin, end)} ... }
 *   rest     the byte buffer; data_offsets are relative to its start, must tile it exactly
 *            (no hole, no overlap, nothing left over), and end - begin = bytes of dtype x shape.
 * The reader refuses headers over 100 MB before reading them and never allocates more than a
 * tensor's validated byte length, so a hostile file cannot make it allocate beyond its own size.
 */

/** Upstream MAX_HEADER_SIZE: headers above this are refused before any allocation. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Absolute byte offset in the file (8 + N + data_offsets[0]). */
  readonly offset: number;
  /** Byte length (data_offsets[1] - data_offsets[0]). */
  readonly length: number;
}

export interface SafetensorsHeader {
  /** Every tensor, in file (offset) order. */
  readonly tensors: SafetensorsEntry[];
  readonly metadata: Record<string, string>;
  /** Absolute offset of the byte buffer (8 + N). */
  readonly dataOffset: number;
}

const FIX_HINT =
  'the file is truncated or corrupt, or was not written by a safetensors writer; re-download or re-export it';

function fail(code: ErrorCode, src: ByteSource, message: string, hint = FIX_HINT): never {
  throw new QuantkitError(code, `${src.label}: ${message}`, hint);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes needed by `count` elements of `bits` each; undefined when they do not end on a byte. */
function exactBytes(count: number, bits: number): number | undefined {
  const totalBits = count * bits;
  return totalBits % 8 === 0 ? totalBits / 8 : undefined;
}

function describe(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return 'a number';
  if (v instanceof Map) return 'an object';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

function parseMetadata(src: ByteSource, v: JsonValue): Record<string, string> {
  if (!(v instanceof Map))
    fail(
      'QK_SAFETENSORS_BAD_METADATA',
      src,
      `__metadata__ is ${describe(v)}, but the format requires an object of string to string`,
    );
  const pairs: [string, string][] = [];
  for (const [k, value] of v) {
    if (typeof value !== 'string')
      fail(
        'QK_SAFETENSORS_BAD_METADATA',
        src,
        `__metadata__[${JSON.stringify(k)}] is ${describe(value)}, but metadata values must be strings`,
      );
    pairs.push([k, value]);
  }
  // fromEntries defines own properties, so a key named "__proto__" stays data.
  return Object.fromEntries(pairs) as Record<string, string>;
}

interface RawEntry {
  name: string;
  dtype: DType;
  dims: number[];
  begin: number;
  end: number;
}

const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);

function parseEntry(src: ByteSource, name: string, v: JsonValue): RawEntry {
  const at = `tensor ${JSON.stringify(name)}`;
  if (!(v instanceof Map))
    fail(
      'QK_SAFETENSORS_BAD_TENSOR_ENTRY',
      src,
      `${at} is ${describe(v)}, expected an object with dtype, shape and data_offsets`,
    );
  const entry: JsonObject = v;
  for (const key of entry.keys()) {
    // The format's JSON schema: additionalProperties false.
    if (!ENTRY_KEYS.has(key))
      fail('QK_SAFETENSORS_BAD_TENSOR_ENTRY', src, `${at} has unknown field ${JSON.stringify(key)}`);
  }
  const dtypeName = entry.get('dtype');
  if (typeof dtypeName !== 'string')
    fail(
      'QK_SAFETENSORS_BAD_TENSOR_ENTRY',
      src,
      `${at}: dtype is ${dtypeName === undefined ? 'missing' : describe(dtypeName)}, expected a string`,
    );
  const dtype = dtypeFromSafetensors(dtypeName);
  if (dtype === undefined) {
    if (isKnownUnsupportedSafetensorsDType(dtypeName)) {
      fail(
        'QK_SAFETENSORS_UNSUPPORTED_DTYPE',
        src,
        `${at} has dtype ${dtypeName}, which quantkit does not support`,
        `convert the tensor to one of ${SAFETENSORS_DTYPE_NAMES.join(', ')}`,
      );
    }
    fail(
      'QK_SAFETENSORS_UNKNOWN_DTYPE',
      src,
      `${at} has unknown dtype ${JSON.stringify(dtypeName)}`,
      `safetensors dtypes quantkit reads: ${SAFETENSORS_DTYPE_NAMES.join(', ')}`,
    );
  }

  const shape = entry.get('shape');
  if (!Array.isArray(shape))
    fail(
      'QK_SAFETENSORS_BAD_SHAPE',
      src,
      `${at}: shape is ${shape === undefined ? 'missing' : describe(shape)}, expected an array of non-negative integers`,
    );
  const dims: number[] = [];
  for (const d of shape) {
    const n = d instanceof JsonNumber ? d.safeInteger : undefined;
    if (n === undefined || n < 0) {
      const shown = d instanceof JsonNumber ? String(d.value) : describe(d);
      fail('QK_SAFETENSORS_BAD_SHAPE', src, `${at}: shape entry ${shown} is not a non-negative integer`);
    }
    dims.push(n);
  }
  const { bits } = dtypeInfo(dtype);
  // Overflow guard: the byte count must stay an exact double (files are far below 2^53 bytes).
  const count = dims.includes(0) ? 0 : dims.reduce((a, b) => a * b, 1);
  if (count * bits > Number.MAX_SAFE_INTEGER) {
    fail(
      'QK_SAFETENSORS_SHAPE_OVERFLOW',
      src,
      `${at}: shape [${dims.join(', ')}] of ${dtypeName} needs more bytes than any file can hold`,
    );
  }

  const offsets = entry.get('data_offsets');
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    fail(
      'QK_SAFETENSORS_BAD_OFFSETS',
      src,
      `${at}: data_offsets is ${offsets === undefined ? 'missing' : describe(offsets)}, expected [begin, end]`,
    );
  }
  const [b, e] = offsets.map((o) => (o instanceof JsonNumber ? o.safeInteger : undefined));
  if (b === undefined || e === undefined || b < 0 || e < 0) {
    fail('QK_SAFETENSORS_BAD_OFFSETS', src, `${at}: data_offsets must be two non-negative integers`);
  }
  if (e < b) fail('QK_SAFETENSORS_BAD_OFFSETS', src, `${at}: data_offsets [${b}, ${e}] ends before it begins`);

  const need = exactBytes(count, bits);
  if (need === undefined) {
    // Upstream MisalignedSlice: a sub-byte tensor must fill whole bytes.
    fail(
      'QK_SAFETENSORS_MISALIGNED',
      src,
      `${at}: ${count} elements of ${dtypeName} (${bits} bits) do not fill whole bytes`,
    );
  }
  if (e - b !== need) {
    fail(
      'QK_SAFETENSORS_LENGTH_MISMATCH',
      src,
      `${at}: ${dtypeName} [${dims.join(', ')}] needs ${need} bytes but data_offsets [${b}, ${e}] span ${e - b}`,
    );
  }
  return { name, dtype, dims, begin: b, end: e };
}

function readHeaderText(src: ByteSource): { text: string; headerLength: number } {
  if (src.size < 8)
    fail('QK_SAFETENSORS_FILE_TOO_SHORT', src, `the file has ${src.size} bytes, fewer than the 8-byte header length`);
  const lenBytes = src.read(0, 8);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    fail(
      'QK_SAFETENSORS_HEADER_TOO_LARGE',
      src,
      `the header claims ${n} bytes, over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`,
      'safetensors readers refuse headers over 100 MB; the file is corrupt or hostile',
    );
  }
  const headerLength = Number(n);
  if (8 + headerLength > src.size) {
    fail(
      'QK_SAFETENSORS_HEADER_OUT_OF_BOUNDS',
      src,
      `the header claims ${headerLength} bytes but the file has only ${src.size - 8} after the length`,
    );
  }
  let text: string;
  try {
    text = utf8.decode(src.read(8, headerLength));
  } catch {
    fail('QK_SAFETENSORS_HEADER_NOT_UTF8', src, 'the header is not valid UTF-8');
  }
  return { text, headerLength };
}

function parseHeaderJson(src: ByteSource, text: string): JsonValue {
  try {
    return parseStrictJson(text);
  } catch (e) {
    if (!(e instanceof JsonError)) throw e;
    if (e.kind === 'duplicate-key') {
      const [first] = e.path;
      if (first === undefined)
        fail('QK_SAFETENSORS_DUPLICATE_NAME', src, `the header names a tensor twice (${e.message})`);
      if (first === '__metadata__') fail('QK_SAFETENSORS_BAD_METADATA', src, `__metadata__ has a ${e.message}`);
      fail('QK_SAFETENSORS_BAD_TENSOR_ENTRY', src, `tensor ${JSON.stringify(first)} has a ${e.message}`);
    }
    return fail('QK_SAFETENSORS_HEADER_NOT_JSON', src, `the header is not valid JSON: ${e.message}`);
  }
}

/** Reads and fully validates the header; touches only the first 8 + N bytes of the source. */
export function readSafetensorsHeader(src: ByteSource): SafetensorsHeader {
  const { text, headerLength } = readHeaderText(src);
  const root = parseHeaderJson(src, text);
  if (!(root instanceof Map))
    fail('QK_SAFETENSORS_HEADER_NOT_OBJECT', src, `the header is ${describe(root)}, expected a JSON object`);

  let metadata: Record<string, string> = {};
  const raw: RawEntry[] = [];
  for (const [name, value] of root) {
    if (name === '__metadata__') metadata = parseMetadata(src, value);
    else raw.push(parseEntry(src, name, value));
  }

  // Tiling check, as upstream: sort by offsets, then each must start where the last ended.
  raw.sort((x, y) => x.begin - y.begin || x.end - y.end);
  const dataOffset = 8 + headerLength;
  const dataSize = src.size - dataOffset;
  let cursor = 0;
  let previous: RawEntry | undefined;
  for (const r of raw) {
    if (r.end > dataSize) {
      fail(
        'QK_SAFETENSORS_OFFSET_OUT_OF_BOUNDS',
        src,
        `tensor ${JSON.stringify(r.name)}: data_offsets [${r.begin}, ${r.end}] run past the ${dataSize}-byte buffer`,
      );
    }
    if (r.begin < cursor) {
      fail(
        'QK_SAFETENSORS_OVERLAP',
        src,
        `tensor ${JSON.stringify(r.name)} [${r.begin}, ${r.end}) overlaps tensor ${JSON.stringify(previous?.name)} ending at ${cursor}`,
      );
    }
    if (r.begin > cursor) {
      fail(
        'QK_SAFETENSORS_HOLE',
        src,
        `bytes [${cursor}, ${r.begin}) before tensor ${JSON.stringify(r.name)} belong to no tensor`,
      );
    }
    cursor = r.end;
    previous = r;
  }
  if (cursor !== dataSize) {
    // Upstream MetadataIncompleteBuffer: the last tensor must end at the end of the file.
    fail('QK_SAFETENSORS_TRAILING_BYTES', src, `the tensors cover ${cursor} bytes but the buffer has ${dataSize}`);
  }

  const tensors: SafetensorsEntry[] = raw.map((r) => ({
    name: r.name,
    dtype: r.dtype,
    dims: r.dims,
    offset: dataOffset + r.begin,
    length: r.end - r.begin,
  }));
  return { tensors, metadata, dataOffset };
}

/** Reads one tensor's bytes (and only those) and decodes them. */
export function readSafetensorsTensor(src: ByteSource, entry: SafetensorsEntry): Tensor {
  const at = `tensor ${JSON.stringify(entry.name)}`;
  const need = exactBytes(elementCount(entry.dims), dtypeInfo(entry.dtype).bits);
  if (need !== entry.length) {
    fail(
      'QK_SAFETENSORS_LENGTH_MISMATCH',
      src,
      `${at}: ${entry.dtype} [${entry.dims.join(', ')}] needs ${need ?? 'a whole number of'} bytes but the entry spans ${entry.length}`,
    );
  }
  if (!Number.isSafeInteger(entry.offset) || entry.offset < 0 || entry.offset + entry.length > src.size) {
    fail(
      'QK_SAFETENSORS_OFFSET_OUT_OF_BOUNDS',
      src,
      `${at}: bytes [${entry.offset}, ${entry.offset + entry.length}) are outside the ${src.size}-byte file`,
    );
  }
  const bytes = src.read(entry.offset, entry.length);
  if (entry.dtype === 'bool') {
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i] as number) > 1)
        fail(
          'QK_SAFETENSORS_BAD_BOOL',
          src,
          `${at}: element ${i} is byte ${bytes[i]}, but BOOL elements must be 0 or 1`,
        );
    }
  }
  const data = tensorDataFromBytes(entry.dtype, entry.dims, bytes, `${src.label}: ${at}`);
  return { dtype: entry.dtype, dims: [...entry.dims], data, name: entry.name };
}

import { isQuantkitError, QuantkitError } from '../../errors.js';
import { dtypeFromOnnx, storageBytes } from '../../tensor/dtype.js';
import type { ByteSource } from '../source.js';
import { TensorProto_DataLocation, type TensorProto } from './proto.js';

/*
 * ONNX external data (onnx/docs/ExternalData.md; onnx.proto TensorProto.external_data): a tensor
 * with data_location = EXTERNAL keeps its raw bytes in another file, named by key/value pairs
 *   location  path relative to the model's folder (required)
 *   offset    byte offset in that file, decimal string (optional, default 0)
 *   length    byte count, decimal string (optional, default: what dims x dtype need)
 *   checksum  SHA-1 of the bytes (optional; not verified here, as ONNX Runtime does not either)
 * A model is untrusted input, so `location` is checked to stay inside the model's folder, and
 * offset/length are checked against the file before a single byte is allocated.
 */

/** Opens files next to the model; the Node version is node/files.ts modelDirFiles(). */
export interface ExternalDataFiles {
  /** `relativeLocation` has already passed validateExternalLocation ('/'-separated). */
  open(relativeLocation: string): ByteSource;
}

export interface ExternalDataRef {
  /** Normalized relative path, '/'-separated, no '.' or empty segments. */
  readonly location: string;
  readonly offset: number;
  /** undefined when the model leaves it out (then dims x dtype decide). */
  readonly length: number | undefined;
  readonly checksum: string | undefined;
}

const OUTSIDE_HINT =
  'external data must live in the model folder or below it; move the file there and use a relative location';

function outside(location: string, tensorName: string, why: string): never {
  throw new QuantkitError(
    'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR',
    `tensor '${tensorName}' points its external data at ${JSON.stringify(location)}, ${why}`,
    OUTSIDE_HINT,
  );
}

/**
 * Checks a `location` cannot leave the model's folder, whatever OS later opens it: no absolute
 * paths (POSIX '/', Windows 'C:' drive letters, '\\server\share' UNC and '\\?\' device paths),
 * no '..' segment with either separator, no NUL, no ':' (Windows drive-relative paths and
 * alternate data streams). Returns the path normalized to '/' separators.
 */
export function validateExternalLocation(location: string, tensorName: string): string {
  if (location.length === 0) outside(location, tensorName, 'which is empty');
  if (location.includes('\0')) outside(location, tensorName, 'which contains a NUL byte');
  if (location.startsWith('/') || location.startsWith('\\')) outside(location, tensorName, 'which is an absolute path');
  if (location.includes(':')) outside(location, tensorName, "which contains ':' (a Windows drive or stream)");
  // Backslash is a separator on Windows, so "..\\x" must count as a parent step everywhere.
  const segments = location.split(/[/\\]/);
  if (segments.some((s) => s === '..')) outside(location, tensorName, "which steps out with '..'");
  const kept = segments.filter((s) => s !== '' && s !== '.');
  if (kept.length === 0) outside(location, tensorName, 'which names the model folder itself, not a file');
  return kept.join('/');
}

const DECIMAL = /^[0-9]+$/;

function outOfBounds(tensorName: string, message: string): never {
  throw new QuantkitError(
    'QK_EXTERNAL_DATA_OUT_OF_BOUNDS',
    `tensor '${tensorName}': ${message}`,
    'the external data file does not match the model; re-export the model with its data file',
  );
}

function parseCount(value: string, key: string, tensorName: string): number {
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n))
    outOfBounds(tensorName, `external_data ${key} ${JSON.stringify(value)} is not a non-negative integer`);
  return n;
}

/** Reads the external_data key/value pairs of a tensor (no file access). */
export function parseExternalDataRef(p: TensorProto): ExternalDataRef {
  const name = p.name || '<unnamed>';
  if (p.dataLocation !== TensorProto_DataLocation.EXTERNAL) {
    throw new QuantkitError(
      'QK_EXTERNAL_DATA_NOT_EXTERNAL',
      `tensor '${name}' does not have data_location EXTERNAL`,
      'read its raw_data or typed fields instead',
    );
  }
  const seen = new Map<string, string>();
  for (const { key, value } of p.externalData) {
    if (seen.has(key)) {
      throw new QuantkitError(
        'QK_EXTERNAL_DATA_BAD_KEY',
        `tensor '${name}' repeats external_data key '${key}'`,
        'each key may appear once; fix or re-export the model',
      );
    }
    seen.set(key, value);
  }
  const location = seen.get('location');
  if (location === undefined) {
    throw new QuantkitError(
      'QK_EXTERNAL_DATA_NO_LOCATION',
      `tensor '${name}' is EXTERNAL but has no external_data 'location'`,
      're-export the model with its external data',
    );
  }
  const offset = seen.get('offset');
  const length = seen.get('length');
  return {
    location: validateExternalLocation(location, name),
    offset: offset === undefined ? 0 : parseCount(offset, 'offset', name),
    length: length === undefined ? undefined : parseCount(length, 'length', name),
    checksum: seen.get('checksum'),
  };
}

/**
 * The raw bytes of an EXTERNAL tensor, as raw_data would hold them. Validates location, offset,
 * length and dims x dtype before opening anything, and the range against the file size before
 * reading, so the allocation never exceeds what the file holds. May return a view into the
 * source's memory for in-memory sources.
 */
export function readExternalTensorBytes(p: TensorProto, files: ExternalDataFiles): Uint8Array {
  const name = p.name || '<unnamed>';
  const ref = parseExternalDataRef(p);
  const dtype = dtypeFromOnnx(p.dataType, `tensor '${name}'`);
  if (dtype === 'string') {
    throw new QuantkitError(
      'QK_EXTERNAL_DATA_UNSUPPORTED_DTYPE',
      `tensor '${name}' is a string tensor stored as external data, which has no defined byte layout`,
      'store string tensors inside the model',
    );
  }
  let count = 1;
  for (const d of p.dims) {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new QuantkitError(
        'QK_TENSOR_BAD_DIMS',
        `tensor '${name}' has dimension ${d}`,
        'initializer dims must be non-negative and of a storable size',
      );
    }
    count *= Number(d);
  }
  const need = storageBytes(dtype, count);
  if (!Number.isSafeInteger(need)) {
    throw new QuantkitError(
      'QK_TENSOR_BAD_DIMS',
      `tensor '${name}' dims [${p.dims.join(', ')}] are too large to store`,
      'check the model',
    );
  }
  if (ref.length !== undefined && ref.length !== need) {
    throw new QuantkitError(
      'QK_TENSOR_DATA_LENGTH',
      `tensor '${name}': ${dtype} [${p.dims.join(', ')}] needs ${need} bytes but external_data length says ${ref.length}`,
      'the model and its data file disagree; re-export them together',
    );
  }
  let src: ByteSource;
  try {
    src = files.open(ref.location);
  } catch (e) {
    // The opener knows the file, not the tensor; name both.
    if (isQuantkitError(e)) throw new QuantkitError(e.code, `tensor '${name}': ${e.message}`, e.hint);
    throw e;
  }
  if (ref.offset > src.size || need > src.size - ref.offset) {
    outOfBounds(name, `bytes [${ref.offset}, ${ref.offset + need}) lie outside ${src.label} (${src.size} bytes)`);
  }
  return src.read(ref.offset, need);
}

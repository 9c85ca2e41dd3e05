import { QuantkitError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { allocData, elementCount, type Tensor } from '../../tensor/tensor.js';

/**
 * NumPy .npy files (format versions 1.0, 2.0, 3.0 as numpy.lib.format documents them):
 * the magic "\x93NUMPY", a major and minor version byte, a little-endian header length
 * (uint16 for 1.0, uint32 for 2.0/3.0), then a Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and ended
 * by '\n' so the data starts aligned, then the elements in C order.
 */

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const PARSE_HINT = 'the file is truncated or not a NumPy .npy file; write it with numpy.save';
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** NumPy type character + item size <-> quantkit dtype (kind, bytes). */
const DESCR: Readonly<Record<string, DType>> = {
  f4: 'float32',
  f8: 'float64',
  f2: 'float16',
  i1: 'int8',
  u1: 'uint8',
  i2: 'int16',
  u2: 'uint16',
  i4: 'int32',
  u4: 'uint32',
  i8: 'int64',
  u8: 'uint64',
  b1: 'bool',
};
const DESCR_OF: Partial<Record<DType, string>> = Object.fromEntries(Object.entries(DESCR).map(([k, v]) => [v, k]));

function parseError(label: string, reason: string): QuantkitError {
  return new QuantkitError('QK_NPY_PARSE', `${label}: not a valid .npy file: ${reason}`, PARSE_HINT);
}

interface Header {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

/**
 * A parser for exactly the dict literal numpy writes (strings, True/False, tuples of ints),
 * so no eval and no surprises: anything else is a parse error.
 */
function parseHeader(text: string, label: string): Header {
  let i = 0;
  const fail = (why: string): never => {
    throw parseError(label, `header ${why} at offset ${i} in ${JSON.stringify(text.trim())}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
  };
  const expectChar = (c: string) => {
    ws();
    if (text[i] !== c) fail(`expected '${c}'`);
    i++;
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') return fail('expected a string');
    const end = text.indexOf(q, i + 1);
    if (end < 0) fail('has an unterminated string');
    const s = text.slice(i + 1, end);
    i = end + 1;
    return s;
  };
  const value = (): string | boolean | number[] => {
    ws();
    if (text.startsWith('True', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('False', i)) {
      i += 5;
      return false;
    }
    if (text[i] === '(') {
      i++;
      const dims: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') {
          i++;
          return dims;
        }
        const m = /^\d+L?/.exec(text.slice(i));
        if (!m) return fail('expected a dimension');
        dims.push(Number.parseInt(m[0], 10));
        i += m[0].length;
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') fail("expected ',' or ')'");
      }
    }
    if (text[i] === '[') return fail("has a structured 'descr' (record arrays are not supported)");
    return str();
  };
  const fields = new Map<string, string | boolean | number[]>();
  expectChar('{');
  for (;;) {
    ws();
    if (text[i] === '}') {
      i++;
      break;
    }
    const key = str();
    expectChar(':');
    fields.set(key, value());
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail("expected ',' or '}'");
  }
  if (text.slice(i).trim() !== '') fail('has text after the dict');
  const descr = fields.get('descr');
  const fortranOrder = fields.get('fortran_order');
  const shape = fields.get('shape');
  if (typeof descr !== 'string') return fail("lacks a 'descr' string");
  if (typeof fortranOrder !== 'boolean') return fail("lacks 'fortran_order' True/False");
  if (!Array.isArray(shape)) return fail("lacks a 'shape' tuple");
  return { descr, fortranOrder, shape };
}

function headerOf(bytes: Uint8Array, label: string): { header: Header; dataOffset: number } {
  if (bytes.length < 10 || MAGIC.some((b, k) => bytes[k] !== b))
    throw parseError(label, 'missing the \\x93NUMPY magic');
  const major = bytes[6] as number;
  const minor = bytes[7] as number;
  if (major < 1 || major > 3 || minor !== 0)
    throw parseError(label, `unknown format version ${major}.${minor} (quantkit reads 1.0, 2.0, 3.0)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) throw parseError(label, 'truncated inside the header length');
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lengthBytes;
  if (start + headerLength > bytes.length)
    throw parseError(label, `header of ${headerLength} bytes runs past the end of the ${bytes.length}-byte file`);
  const raw = bytes.subarray(start, start + headerLength);
  let text: string;
  try {
    // Version 3.0 allows UTF-8 field names; 1.0/2.0 headers are latin-1 (ASCII in practice).
    text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(raw);
  } catch {
    throw parseError(label, 'header is not valid text');
  }
  return { header: parseHeader(text, label), dataOffset: start + headerLength };
}

/** Reads a .npy file into a Tensor; big-endian data is converted. */
export function readNpy(bytes: Uint8Array, label = '<npy>'): Tensor {
  const { header, dataOffset } = headerOf(bytes, label);
  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(header.descr);
  const dtype = m ? DESCR[`${m[2]}${m[3]}`] : undefined;
  if (!m || !dtype) {
    throw new QuantkitError(
      'QK_NPY_UNSUPPORTED_DTYPE',
      `${label}: NumPy dtype '${header.descr}' is not supported`,
      `convert the array first, e.g. x.astype(np.float32); supported: ${Object.keys(DESCR).join(', ')}`,
    );
  }
  // With at most one dimension Fortran and C order are the same bytes, so only real matrices are refused.
  if (header.fortranOrder && header.shape.length > 1) {
    throw new QuantkitError(
      'QK_NPY_FORTRAN_ORDER',
      `${label}: array is stored in Fortran (column-major) order`,
      'save it in C order: np.save(path, np.ascontiguousarray(x))',
    );
  }
  const dims = header.shape;
  const count = elementCount(dims);
  const itemSize = Number(m[3]);
  if (!Number.isSafeInteger(count * itemSize)) throw parseError(label, `shape (${dims.join(', ')}) is too large`);
  const have = bytes.length - dataOffset;
  if (have !== count * itemSize) {
    throw parseError(
      label,
      `shape (${dims.join(', ')}) of ${header.descr} needs ${count * itemSize} data bytes but the file has ${have}`,
    );
  }
  const data = allocData(dtype, count);
  if (Array.isArray(data)) throw new Error('unreachable: no string dtype in .npy');
  const out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  out.set(bytes.subarray(dataOffset));
  // '=' is native order; every host quantkit runs on is little-endian, which the check below keeps honest.
  const bigEndianData = m[1] === '>' || (m[1] === '=' && !LITTLE_ENDIAN_HOST);
  if (itemSize > 1 && bigEndianData === LITTLE_ENDIAN_HOST) {
    for (let k = 0; k < out.length; k += itemSize) out.subarray(k, k + itemSize).reverse();
  }
  if (dtype === 'bool') for (let k = 0; k < out.length; k++) out[k] = out[k] !== 0 ? 1 : 0;
  return { dtype, dims, data };
}

/** Writes a Tensor as a version 1.0 .npy file (2.0 when the header is too long), little-endian, C order. */
export function writeNpy(t: Tensor): Uint8Array {
  const code = DESCR_OF[t.dtype];
  if (!code || Array.isArray(t.data)) {
    throw new QuantkitError(
      'QK_NPY_UNSUPPORTED_DTYPE',
      `tensor${t.name ? ` '${t.name}'` : ''} of dtype ${t.dtype} has no NumPy .npy equivalent`,
      `write it as an ONNX TensorProto .pb instead, or convert it to one of ${Object.values(DESCR).join(', ')}`,
    );
  }
  const byteOrder = code === 'i1' || code === 'u1' || code === 'b1' ? '|' : '<';
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  // Exactly what numpy.lib.format writes, so files are byte-identical to np.save.
  const dict = `{'descr': '${byteOrder}${code}', 'fortran_order': False, 'shape': ${shape}, }`;
  let major = 1;
  let prefix = 10;
  // numpy pads so that magic + version + length + header is a multiple of 64 (ARRAY_ALIGN).
  let total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  if (total - prefix > 0xffff) {
    major = 2;
    prefix = 12;
    total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  }
  const headerLength = total - prefix;
  const data = t.data;
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerLength, true);
  else view.setUint32(8, headerLength, true);
  const header = dict.padEnd(headerLength - 1, ' ') + '\n';
  for (let k = 0; k < header.length; k++) out[prefix + k] = header.charCodeAt(k);
  const body = out.subarray(total);
  body.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const itemSize = data.BYTES_PER_ELEMENT;
  if (!LITTLE_ENDIAN_HOST && itemSize > 1) {
    for (let k = 0; k < body.length; k += itemSize) body.subarray(k, k + itemSize).reverse();
  }
  return out;
}

import { QuantkitError, type ErrorCode } from '../../errors.js';
import { dtypeInfo, type DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import { SAFETENSORS_DTYPE_NAMES, safetensorsDTypeName } from './dtypes.js';
import { SAFETENSORS_MAX_HEADER_BYTES } from './read.js';
import { tensorDataToBytes } from './tensor-bytes.js';

/*
 * safetensors writer, streaming: planSafetensors lays out the file from names, dtypes and dims
 * alone, so a caller writes `plan.header` and then each tensor's bytes (in `plan.order`) without
 * ever holding the whole file. Layout follows the reference writer (`safetensors::tensor::prepare`):
 * tensors sorted by element width, widest first, then by name, so every tensor starts aligned
 * to its element size; the JSON header is padded with spaces to a multiple of 8 bytes.
 */

export interface SafetensorsPlanEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
}

export interface SafetensorsPlan {
  /** 8-byte length + JSON header + space padding: the first bytes of the file. */
  readonly header: Uint8Array;
  /** Indices into the planned entries, in the order their bytes must follow the header. */
  readonly order: readonly number[];
  /** Absolute file offset of each entry's bytes, indexed like the input entries. */
  readonly offsets: readonly number[];
  /** Byte length of each entry, indexed like the input entries. */
  readonly lengths: readonly number[];
  /** Total file size. */
  readonly size: number;
}

const WRITE_HINT = 'fix the tensor list before saving';

// A lone surrogate cannot be written as UTF-8 (JSON.stringify would emit a \ud800 escape that
// strict readers, ours and serde_json, refuse).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(s: string, what: string, code: ErrorCode): void {
  if (LONE_SURROGATE.test(s))
    throw new QuantkitError(
      code,
      `${what} ${JSON.stringify(s)} contains a lone UTF-16 surrogate, which UTF-8 cannot encode`,
      WRITE_HINT,
    );
}

/** Code-point order, as the reference writer compares names (Rust str ordering is bytewise UTF-8). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return (x.done ? 0 : 1) - (y.done ? 0 : 1);
    const d = (x.value.codePointAt(0) as number) - (y.value.codePointAt(0) as number);
    if (d !== 0) return d;
  }
}

function entryBytes(e: SafetensorsPlanEntry): number {
  const at = `tensor ${JSON.stringify(e.name)}`;
  if (safetensorsDTypeName(e.dtype) === undefined) {
    throw new QuantkitError(
      'QK_SAFETENSORS_UNSUPPORTED_DTYPE',
      `${at} is ${e.dtype}, which safetensors cannot store`,
      `safetensors holds ${SAFETENSORS_DTYPE_NAMES.join(', ')}; pack sub-byte integers into uint8 first`,
    );
  }
  let count = 1;
  for (const d of e.dims) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new QuantkitError(
        'QK_SAFETENSORS_BAD_SHAPE',
        `${at} has dims [${e.dims.join(', ')}]; each must be a non-negative integer`,
        WRITE_HINT,
      );
    count *= d;
  }
  const bits = count * dtypeInfo(e.dtype).bits;
  if (bits > Number.MAX_SAFE_INTEGER)
    throw new QuantkitError(
      'QK_SAFETENSORS_SHAPE_OVERFLOW',
      `${at} dims [${e.dims.join(', ')}] are too large to store`,
      WRITE_HINT,
    );
  if (bits % 8 !== 0) {
    throw new QuantkitError(
      'QK_SAFETENSORS_MISALIGNED',
      `${at}: ${count} elements of ${e.dtype} do not fill whole bytes, which safetensors forbids`,
      'pad the tensor to an even element count',
    );
  }
  return bits / 8;
}

export function planSafetensors(
  entries: readonly SafetensorsPlanEntry[],
  metadata?: Readonly<Record<string, string>>,
): SafetensorsPlan {
  const names = new Set<string>();
  for (const e of entries) {
    if (e.name === '__metadata__')
      throw new QuantkitError(
        'QK_SAFETENSORS_BAD_NAME',
        'a tensor may not be named "__metadata__" (the key is reserved for metadata)',
        'rename the tensor',
      );
    if (names.has(e.name))
      throw new QuantkitError(
        'QK_SAFETENSORS_DUPLICATE_NAME',
        `two tensors are named ${JSON.stringify(e.name)}`,
        'give every tensor a distinct name',
      );
    checkText(e.name, 'tensor name', 'QK_SAFETENSORS_BAD_NAME');
    names.add(e.name);
  }
  const lengths = entries.map(entryBytes);
  const order = entries.map((_, i) => i);
  order.sort((i, j) => {
    const a = entries[i] as SafetensorsPlanEntry;
    const b = entries[j] as SafetensorsPlanEntry;
    return dtypeInfo(b.dtype).bits - dtypeInfo(a.dtype).bits || compareCodePoints(a.name, b.name);
  });

  // Built by hand, not JSON.stringify of an object: integer-like keys would be reordered and a
  // "__proto__" key would vanish into the prototype.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const kv: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        throw new QuantkitError(
          'QK_SAFETENSORS_BAD_METADATA',
          `metadata ${JSON.stringify(k)} is ${typeof v}; safetensors metadata values must be strings`,
          'convert the value to a string',
        );
      checkText(k, 'metadata key', 'QK_SAFETENSORS_BAD_METADATA');
      checkText(v, 'metadata value', 'QK_SAFETENSORS_BAD_METADATA');
      kv.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${kv.join(',')}}`);
  }
  const relative: number[] = new Array<number>(entries.length).fill(0);
  let cursor = 0;
  for (const i of order) {
    const e = entries[i] as SafetensorsPlanEntry;
    const len = lengths[i] as number;
    relative[i] = cursor;
    parts.push(
      `${JSON.stringify(e.name)}:{"dtype":"${safetensorsDTypeName(e.dtype)}","shape":[${e.dims.join(',')}],"data_offsets":[${cursor},${cursor + len}]}`,
    );
    cursor += len;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > SAFETENSORS_MAX_HEADER_BYTES) {
    throw new QuantkitError(
      'QK_SAFETENSORS_HEADER_TOO_LARGE',
      `the header would take ${padded} bytes, over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit readers enforce`,
      'split the tensors over several files or shorten the metadata',
    );
  }
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  const offsets = relative.map((r) => header.length + r);
  return { header, order, offsets, lengths, size: header.length + cursor };
}

/** The bytes to write for `t` at its place in a plan; checks they match the planned entry. */
export function safetensorsTensorBytes(t: Tensor, planned?: SafetensorsPlanEntry): Uint8Array {
  const name = planned?.name ?? t.name ?? '<unnamed>';
  const at = `tensor ${JSON.stringify(name)}`;
  if (
    planned !== undefined &&
    (planned.dtype !== t.dtype || planned.dims.length !== t.dims.length || planned.dims.some((d, k) => d !== t.dims[k]))
  ) {
    throw new QuantkitError(
      'QK_SAFETENSORS_PLAN_MISMATCH',
      `${at} was planned as ${planned.dtype} [${planned.dims.join(', ')}] but is ${t.dtype} [${t.dims.join(', ')}]`,
      'plan the file from the same tensors you write',
    );
  }
  if (t.dtype === 'bool') {
    const d = t.data as Uint8Array;
    for (let i = 0; i < d.length; i++) {
      if ((d[i] as number) > 1)
        throw new QuantkitError(
          'QK_SAFETENSORS_BAD_BOOL',
          `${at}: bool element ${i} holds ${d[i]}, not 0 or 1`,
          'store booleans as 0/1',
        );
    }
  }
  return tensorDataToBytes(t, at);
}

/**
 * Streams a whole file: yields the header, then each tensor's bytes in plan order, asking `load`
 * for one tensor at a time (feed it to writeFileAtomic). `load(i)` gets the input index.
 */
export function* safetensorsChunks(
  entries: readonly SafetensorsPlanEntry[],
  load: (index: number) => Tensor,
  metadata?: Readonly<Record<string, string>>,
): Generator<Uint8Array> {
  const plan = planSafetensors(entries, metadata);
  yield plan.header;
  for (const i of plan.order) yield safetensorsTensorBytes(load(i), entries[i]);
}

/** Whole file in memory; tensors must be named. */
export function encodeSafetensors(tensors: readonly Tensor[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const entries = tensors.map((t, i) => {
    if (t.name === undefined)
      throw new QuantkitError(
        'QK_SAFETENSORS_UNNAMED_TENSOR',
        `tensor #${i} (${t.dtype} [${t.dims.join(', ')}]) has no name`,
        'give every tensor a name; safetensors keys tensors by name',
      );
    return { name: t.name, dtype: t.dtype, dims: t.dims };
  });
  const plan = planSafetensors(entries, metadata);
  const out = new Uint8Array(plan.size);
  out.set(plan.header, 0);
  for (const i of plan.order) out.set(safetensorsTensorBytes(tensors[i] as Tensor, entries[i]), plan.offsets[i]);
  return out;
}

import { decodeFloat16, encodeFloat16 } from '../formats/float16.js';
import { canonicalCode, codeLengths, huffmanDecode, huffmanEncode, symbolCounts } from './huffman.js';

/*
 * Exact storage, in fewer bytes than float32, of a float tensor that is not a k-means weight:
 *   values   a tensor with at most 256 distinct values (an additive causal mask holds two): the
 *            distinct float32 bit patterns and a Huffman code of which one each element holds
 *   float16  a tensor whose every value is a binary16 value (the compress pipeline rounds biases
 *            and norm scales so), as binary16 bit patterns
 * Both give back the very float32 bit patterns (−0, NaN payloads included: values compare as
 * bits, and a NaN is never taken as binary16), so a model decodes to the bytes it was made from.
 */

export type PlainForm = 'values' | 'float16';

/** One exactly stored tensor, as the container's header describes it. */
export interface PlainTensor {
  readonly name: string;
  readonly form: PlainForm;
  readonly count: number;
  /** 'values': the distinct values stored (1…256) and the index width (2^bits ≥ distinct); 0 for float16. */
  readonly distinct: number;
  readonly bits: number;
  /** 'values': exact bit length of the index stream; 0 for float16. */
  readonly codeStreamBits: number;
}

const MAX_DISTINCT = 256;
/** Below this saving the header entry (~120 bytes of JSON) eats the gain. */
const MIN_SAVING = 128;

/** Bytes of the tensor's section. */
export function plainBytes(t: PlainTensor): number {
  return t.form === 'float16' ? 2 * t.count : 4 * t.distinct + 2 ** t.bits + Math.ceil(t.codeStreamBits / 8);
}

/** The distinct bit patterns of `bits` (sorted), or undefined when there are more than MAX_DISTINCT. */
function distinctPatterns(bits: Uint32Array): Uint32Array | undefined {
  const seen = new Set<number>();
  for (const b of bits) {
    seen.add(b);
    if (seen.size > MAX_DISTINCT) return undefined;
  }
  return Uint32Array.from(seen).sort();
}

/** True when every value round-trips through binary16 bit for bit (so no NaN). */
export function isFloat16Exact(data: Float32Array): boolean {
  const back = new Float32Array(1);
  for (const x of data) {
    if (x !== x) return false;
    back[0] = decodeFloat16(encodeFloat16(x));
    if (!Object.is(back[0], x)) return false;
  }
  return true;
}

function indexWidth(distinct: number): number {
  let b = 1;
  while (2 ** b < distinct) b++;
  return b;
}

/**
 * The smaller exact form of `data`, or undefined when neither saves MIN_SAVING bytes over
 * float32. Returns the header entry and the section bytes.
 */
export function encodePlain(name: string, data: Float32Array): { tensor: PlainTensor; bytes: Uint8Array } | undefined {
  const raw = 4 * data.length;
  const options: { tensor: PlainTensor; bytes: () => Uint8Array }[] = [];
  const patterns = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const values = distinctPatterns(patterns);
  if (values) {
    const bits = indexWidth(values.length);
    const position = new Map(Array.from(values, (v, i) => [v, i]));
    const codes = Uint8Array.from(patterns, (p) => position.get(p) as number);
    const lengths = codeLengths(symbolCounts(codes, 2 ** bits));
    const stream = huffmanEncode(codes, canonicalCode(lengths));
    const tensor: PlainTensor = {
      name,
      form: 'values',
      count: data.length,
      distinct: values.length,
      bits,
      codeStreamBits: stream.bits,
    };
    options.push({
      tensor,
      bytes: () => {
        const out = new Uint8Array(plainBytes(tensor));
        out.set(new Uint8Array(values.buffer));
        out.set(lengths, 4 * values.length);
        out.set(stream.bytes, 4 * values.length + lengths.length);
        return out;
      },
    });
  }
  if (isFloat16Exact(data)) {
    const tensor: PlainTensor = { name, form: 'float16', count: data.length, distinct: 0, bits: 0, codeStreamBits: 0 };
    options.push({
      tensor,
      bytes: () => new Uint8Array(Uint16Array.from(data, (x) => encodeFloat16(x)).buffer),
    });
  }
  const best = options.sort((a, b) => plainBytes(a.tensor) - plainBytes(b.tensor))[0];
  if (!best || raw - plainBytes(best.tensor) < MIN_SAVING) return undefined;
  return { tensor: best.tensor, bytes: best.bytes() };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A header entry checked field by field; `damaged` makes the caller's error. */
export function checkedPlain(v: unknown, i: number, damaged: (why: string) => Error): PlainTensor {
  const o = v as Record<string, unknown>;
  const ok =
    typeof v === 'object' &&
    v !== null &&
    typeof o.name === 'string' &&
    (o.form === 'values' || o.form === 'float16') &&
    ['count', 'distinct', 'bits', 'codeStreamBits'].every((k) => isCount(o[k]));
  if (!ok) throw damaged(`plain tensor entry ${i} is malformed`);
  const t = v as PlainTensor;
  if (t.form === 'values') {
    if (t.bits < 1 || t.bits > 8 || t.distinct < 1 || t.distinct > 2 ** t.bits)
      throw damaged(`tensor ${t.name}: ${t.distinct} distinct values with ${t.bits}-bit indices`);
    // Every element costs at least one bit of the stream.
    if (t.count > t.codeStreamBits) throw damaged(`tensor ${t.name}: ${t.count} values in ${t.codeStreamBits} bits`);
  } else if (t.distinct !== 0 || t.bits !== 0 || t.codeStreamBits !== 0)
    throw damaged(`tensor ${t.name}: float16 with index fields`);
  return t;
}

/** The float32 values of a section written by encodePlain. */
export function decodePlain(
  t: PlainTensor,
  section: Uint8Array,
  what: string,
  damaged: (why: string) => Error,
): Float32Array {
  if (section.length !== plainBytes(t))
    throw damaged(`tensor ${t.name}: a section of ${section.length} bytes, its fields need ${plainBytes(t)}`);
  const bytes = new Uint8Array(section); // a copy, aligned (a Node Buffer's slice would be a view)
  if (t.form === 'float16') {
    const halves = new Uint16Array(bytes.buffer);
    return Float32Array.from(halves, (h) => decodeFloat16(h));
  }
  const values = new Uint32Array(bytes.buffer, 0, t.distinct);
  const lengths = bytes.subarray(4 * t.distinct, 4 * t.distinct + 2 ** t.bits);
  const stream = bytes.subarray(4 * t.distinct + 2 ** t.bits);
  const codes = huffmanDecode(stream, t.codeStreamBits, lengths, t.count, `${what} values`);
  const out = new Uint32Array(t.count);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] as number;
    if (c >= t.distinct) throw damaged(`tensor ${t.name}: value index ${c} of ${t.distinct}`);
    out[i] = values[c] as number;
  }
  return new Float32Array(out.buffer);
}

import { QuantkitError } from '../errors.js';
import { readContainer, writeContainer, type JsonValue } from '../io/qkcz/container.js';
import { decodeModel, encodeModel, type ModelProto, type TensorProto } from '../io/onnx/proto.js';
import { tensorFromProto } from '../io/onnx/tensor.js';
import type { KMeansLayout } from '../passes/weight-only/types.js';
import { canonicalCode, codeLengths, huffmanDecode, huffmanEncode, symbolCounts } from '../quant/huffman.js';
import { checkKMeansBits, indexSlotBits, packIndices, unpackIndices } from '../quant/kmeans-weights.js';
import { checkedPlain, decodePlain, encodePlain, plainBytes, type PlainTensor } from '../quant/plain-tensors.js';
import { bestGapBits, decodeSparse, encodeSparse, type SparseEntries } from '../quant/sparse-gaps.js';

/*
 * Deep Compression's last stage as a file: a k-means model (quantize --scheme kmeans, or the
 * compress pipeline's pruned one) whose index tensors are Huffman-coded, a pruned tensor's as
 * sparse entries with relative indices (quant/sparse-gaps.ts), inside the container of
 * io/qkcz/container.ts. The format is described in docs/compressed-format.md.
 *
 * Sections: 'model' is the ONNX model with the coded tensors' data left out (their dims kept);
 * 't<i>' holds the i-th coded tensor: its codebook initializer's float32 bytes, the Huffman code
 * lengths (gap alphabet, then index alphabet), the gap bitstream and the index bitstream, back to
 * back. Reading it back refills those initializers with the very bytes they had, so the ONNX
 * model is the one that was compressed. 'p<i>' holds the i-th other float tensor stored exactly in
 * fewer bytes (plain-tensors.ts: few distinct values, or every value a binary16 one).
 */

export const COMPRESSED_KIND = 'quantkit-deep-compression';

/** One coded tensor, as the header describes it. */
export interface CodedTensor {
  readonly indices: string;
  readonly codebook: string;
  readonly count: number;
  readonly bits: number;
  readonly slot: number;
  /**
   * Sparse entries around code 0 (pruned weights), or every index: a pruned tensor is stored
   * sparse unless the dense code of its indices is smaller (few zeros, narrow indices).
   */
  readonly sparse: boolean;
  /** Relative-index width (sparse only; 0 otherwise). */
  readonly gapBits: number;
  /** Entries stored (non-zeros plus fillers), or `count` when dense. */
  readonly entries: number;
  readonly fillers: number;
  readonly gapStreamBits: number;
  readonly codeStreamBits: number;
}

export interface CompressedResult {
  readonly bytes: Uint8Array;
  readonly tensors: readonly CodedTensor[];
  /** The other float tensors stored exactly in fewer bytes than float32. */
  readonly plain: readonly PlainTensor[];
  /** Bytes of the ONNX skeleton (graph, small tensors, codebooks left in). */
  readonly skeletonBytes: number;
}

function initializerMap(model: ModelProto): Map<string, TensorProto> {
  return new Map((model.graph?.initializer ?? []).map((t) => [t.name, t]));
}

/** The initializer's bytes as stored (little-endian), whichever field the proto used. */
function tensorBytes(p: TensorProto, where: string): Uint8Array {
  const t = tensorFromProto(p, where);
  const d = t.data as Uint8Array | Float32Array;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
}

function emptied(p: TensorProto): void {
  p.rawData = new Uint8Array(0);
  p.floatData = [];
  p.int32Data = [];
}

interface CodedIndices {
  /** 0: dense (every index coded). */
  readonly gapBits: number;
  readonly entries: SparseEntries;
  readonly gaps: { bytes: Uint8Array; bits: number };
  readonly codeStream: { bytes: Uint8Array; bits: number };
  /** Huffman code lengths: the gap alphabet, then the index alphabet. */
  readonly lengths: Uint8Array;
}

/** Huffman-codes `codes` densely (gapBits 0) or as sparse entries around code 0. */
function codeIndices(codes: Uint8Array, bits: number, gapBits: number): CodedIndices {
  const entries: SparseEntries =
    gapBits === 0 ? { gaps: new Uint8Array(0), codes, fillers: 0 } : encodeSparse(codes, 0, gapBits);
  const gapLengths = codeLengths(symbolCounts(entries.gaps, gapBits === 0 ? 0 : 2 ** gapBits));
  const codeLens = codeLengths(symbolCounts(entries.codes, 2 ** bits));
  const lengths = new Uint8Array(gapLengths.length + codeLens.length);
  lengths.set(gapLengths);
  lengths.set(codeLens, gapLengths.length);
  return {
    gapBits,
    entries,
    gaps: huffmanEncode(entries.gaps, canonicalCode(gapLengths)),
    codeStream: huffmanEncode(entries.codes, canonicalCode(codeLens)),
    lengths,
  };
}

function smaller(a: CodedIndices, b: CodedIndices): CodedIndices {
  const size = (c: CodedIndices) => c.lengths.length + c.gaps.bytes.length + c.codeStream.bytes.length;
  return size(a) <= size(b) ? a : b;
}

/** Entropy-codes the k-means index tensors `layouts` of the ONNX model `onnx` into a container. */
export function compressKMeansModel(onnx: Uint8Array, layouts: readonly KMeansLayout[]): CompressedResult {
  const model = decodeModel(onnx, 'model');
  const inits = initializerMap(model);
  const sections: { name: string; bytes: Uint8Array }[] = [];
  const tensors: CodedTensor[] = [];
  layouts.forEach((l, i) => {
    const idx = inits.get(l.indices);
    const cb = inits.get(l.codebook);
    if (!idx || !cb) throw new Error(`k-means layout names initializers the model lacks: ${l.indices}, ${l.codebook}`);
    const codes = unpackIndices(tensorBytes(idx, l.indices), l.slot as 1 | 2 | 4 | 8, l.count);
    // Sparse entries (the paper's storage) where they pay; dense indices when the zeros are too
    // few for relative indices to beat a Huffman code of every index.
    const dense = codeIndices(codes, l.bits, 0);
    const coded = l.zeroCode ? smaller(codeIndices(codes, l.bits, bestGapBits(codes, 0, l.bits)), dense) : dense;
    const { gapBits, entries, gaps, codeStream, lengths } = coded;
    sections.push({
      name: `t${i}`,
      bytes: concat([tensorBytes(cb, l.codebook), lengths, gaps.bytes, codeStream.bytes]),
    });
    tensors.push({
      indices: l.indices,
      codebook: l.codebook,
      count: l.count,
      bits: l.bits,
      slot: l.slot,
      sparse: gapBits > 0,
      gapBits,
      entries: entries.codes.length,
      fillers: entries.fillers,
      gapStreamBits: gaps.bits,
      codeStreamBits: codeStream.bits,
    });
    emptied(idx);
    emptied(cb);
  });
  const coded = new Set(layouts.flatMap((l) => [l.indices, l.codebook]));
  const plain: PlainTensor[] = [];
  for (const p of model.graph?.initializer ?? []) {
    // Only tensors held as raw bytes: refilling raw_data then gives back the very proto.
    if (coded.has(p.name) || p.dataType !== FLOAT || p.rawData.length === 0 || p.externalData.length > 0) continue;
    const e = encodePlain(p.name, new Float32Array(new Uint8Array(p.rawData).buffer));
    if (!e) continue;
    sections.push({ name: `p${plain.length}`, bytes: e.bytes });
    plain.push(e.tensor);
    emptied(p);
  }
  const skeleton = encodeModel(model);
  const bytes = writeContainer({
    meta: {
      kind: COMPRESSED_KIND,
      tensors: tensors as unknown as JsonValue[],
      ...(plain.length > 0 ? { plain: plain as unknown as JsonValue[] } : {}),
    },
    // Deflate pays on the graph (names, small tensors) and a plain tensor's values; the container
    // keeps a section as it is when deflating does not shrink it (Huffman streams).
    sections: [{ name: 'model', bytes: skeleton }, ...sections].map((s) => ({ ...s, deflate: true })),
  });
  return { bytes, tensors, plain, skeletonBytes: skeleton.length };
}

/** TensorProto.DataType FLOAT. */
const FLOAT = 1;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function damaged(file: string, why: string): QuantkitError {
  return new QuantkitError(
    'QK_COMPRESSED_CORRUPT',
    `${file}: ${why}`,
    'the file is damaged or not written by quantkit compress; write it again',
  );
}

/** A header entry checked field by field (a hostile header must not drive allocations). */
function codedTensor(v: unknown, file: string, i: number): CodedTensor {
  const o = v as Record<string, unknown>;
  const ok =
    typeof v === 'object' &&
    v !== null &&
    typeof o.indices === 'string' &&
    typeof o.codebook === 'string' &&
    typeof o.sparse === 'boolean' &&
    ['count', 'bits', 'slot', 'gapBits', 'entries', 'fillers', 'gapStreamBits', 'codeStreamBits'].every((k) =>
      isCount(o[k]),
    );
  if (!ok) throw damaged(file, `tensor entry ${i} is malformed`);
  const t = v as CodedTensor;
  if (t.bits < 1 || t.bits > 8 || t.slot !== indexSlotBits(checkKMeansBits(t.bits)))
    throw damaged(file, `tensor ${t.indices}: ${t.bits}-bit indices in ${t.slot}-bit slots`);
  if (t.sparse && (t.gapBits < 1 || t.gapBits > 8))
    throw damaged(file, `tensor ${t.indices}: relative indices need 1 to 8 bits, not ${t.gapBits}`);
  if (!t.sparse && (t.gapBits !== 0 || t.entries !== t.count))
    throw damaged(file, `tensor ${t.indices}: dense with sparse fields`);
  return t;
}
/** The ONNX model a container holds, its index tensors decoded back to their exact bytes. */
export function decompressModel(
  bytes: Uint8Array,
  file = '<compressed>',
): { onnx: Uint8Array; tensors: CodedTensor[]; plain: PlainTensor[] } {
  const c = readContainer(bytes, file);
  if (c.meta.kind !== COMPRESSED_KIND || !Array.isArray(c.meta.tensors))
    throw damaged(file, `the container holds '${String(c.meta.kind)}', not a compressed model`);
  const section = (name: string): Uint8Array => {
    const s = c.sections.get(name);
    if (!s) throw damaged(file, `section '${name}' is missing`);
    return s;
  };
  let model: ModelProto;
  try {
    model = decodeModel(section('model'), `${file} (model section)`);
  } catch (e) {
    if (e instanceof QuantkitError) throw damaged(file, `the model section is not an ONNX model (${e.message})`);
    throw e;
  }
  const inits = initializerMap(model);
  const tensors = c.meta.tensors.map((v, i) => codedTensor(v, file, i));
  tensors.forEach((t, i) => {
    const what = `${file}: tensor ${t.indices}`;
    const idx = inits.get(t.indices);
    const cb = inits.get(t.codebook);
    if (!idx || !cb) throw damaged(file, `tensor ${t.indices}: the model has no initializer of that name`);
    const packedBytes = idx.dims.reduce((a, b) => a * Number(b), 1);
    if (packedBytes !== Math.ceil((t.count * t.slot) / 8))
      throw damaged(file, `tensor ${t.indices}: ${t.count} indices do not fill ${packedBytes} bytes`);
    // The tensor's section: codebook, Huffman code lengths, gap stream, index stream.
    const gapAlphabet = t.sparse ? 2 ** t.gapBits : 0;
    const parts = [
      4 * cb.dims.reduce((a, b) => a * Number(b), 1),
      gapAlphabet + 2 ** t.bits,
      Math.ceil(t.gapStreamBits / 8),
      Math.ceil(t.codeStreamBits / 8),
    ];
    const sec = section(`t${i}`);
    if (sec.length !== parts.reduce((a, b) => a + b, 0))
      throw damaged(
        file,
        `tensor ${t.indices}: a section of ${sec.length} bytes, its fields need ${parts.join(' + ')}`,
      );
    const [codebook, lengths, gapStream, codeStream] = parts.map((n, k) => {
      const start = parts.slice(0, k).reduce((a, b) => a + b, 0);
      return sec.subarray(start, start + n);
    }) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    // Every symbol costs at least one bit, so a stream bounds its own entry count.
    if (t.entries > t.codeStreamBits || (t.sparse && t.entries > t.gapStreamBits) || t.entries > t.count)
      throw damaged(file, `tensor ${t.indices}: ${t.entries} entries`);
    const codes = huffmanDecode(
      codeStream,
      t.codeStreamBits,
      lengths.subarray(gapAlphabet),
      t.entries,
      `${what} indices`,
    );
    let dense = codes;
    if (t.sparse) {
      const gaps = huffmanDecode(
        gapStream,
        t.gapStreamBits,
        lengths.subarray(0, gapAlphabet),
        t.entries,
        `${what} relative indices`,
      );
      dense = decodeSparse({ gaps, codes }, 0, t.count, what);
    }
    idx.rawData = new Uint8Array(packIndices(dense, t.slot as 1 | 2 | 4 | 8));
    cb.rawData = new Uint8Array(codebook);
  });
  const plainMeta = c.meta.plain ?? [];
  if (!Array.isArray(plainMeta)) throw damaged(file, "the header's plain tensor list is not a list");
  const plain = plainMeta.map((v, i) => checkedPlain(v, i, (why) => damaged(file, why)));
  plain.forEach((p, i) => {
    const init = inits.get(p.name);
    if (!init || init.dataType !== FLOAT)
      throw damaged(file, `tensor ${p.name}: the model has no float initializer of that name`);
    const count = init.dims.reduce((a, b) => a * Number(b), 1);
    if (count !== p.count) throw damaged(file, `tensor ${p.name}: ${p.count} values for ${count} elements`);
    const values = decodePlain(p, section(`p${i}`), `${file}: tensor ${p.name}`, (why) => damaged(file, why));
    init.rawData = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
  });
  return { onnx: encodeModel(model), tensors, plain };
}

export { plainBytes, type PlainTensor };

/** Bytes of one coded tensor's Huffman tables and bitstreams. */
export function codedBytes(t: CodedTensor): number {
  return (
    (t.sparse ? 2 ** t.gapBits : 0) + 2 ** t.bits + Math.ceil(t.gapStreamBits / 8) + Math.ceil(t.codeStreamBits / 8)
  );
}

/** Bits of one coded tensor before entropy coding (fixed-width fields), for the stage table. */
export function fixedWidthBits(t: CodedTensor): number {
  return t.entries * (t.bits + t.gapBits);
}

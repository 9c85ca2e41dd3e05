import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compressModel } from '../src/flows/compress.js';
import { decompressModel, plainBytes } from '../src/flows/compressed-model.js';
import { lmPerplexity } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { totalInitializerBytes } from '../src/passes/weight-only/index.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { readContainer, writeContainer, type JsonValue } from '../src/io/qkcz/container.js';
import { readNpy } from '../src/io/npy/npy.js';
import { makeTensor } from '../src/tensor/tensor.js';

/*
 * The compress pipeline (data-free) on the char LM: the tensors outside the matrices — the learned
 * position table (read by Slice), the additive causal mask, biases and norms — are shared,
 * stored exactly or rounded to binary16, and the container still decodes to the very ONNX model,
 * which ONNX Runtime runs to the perplexity the pipeline reported.
 */

const lm = readFileSync(new URL('../models/lm.onnx', import.meta.url));
const evalAll = readNpy(readFileSync(new URL('../models/lm-eval.npy', import.meta.url)));
// 16 of the 64 evaluation windows: enough to compare two runs of the same bytes.
const windows = makeTensor('int64', [16, 65], (evalAll.data as BigInt64Array).slice(0, 16 * 65));
const perplexity = async (b: Uint8Array) => (await lmPerplexity(b, windows)).perplexity;

describe('compress on the char LM: position table, mask, biases and norms', () => {
  it('prune 0.5 + k-means 4 + Huffman: pos shared, mask in 1 bit a value, vectors in binary16; sizes from the real bytes, the file ≥ 10× smaller than the fp32 one; ORT runs the decoded model', async () => {
    const r = await compressModel(lm, {
      prune: 0.5,
      kmeansBits: 4,
      evaluate: async (b) => ({ metric: 'perplexity', value: await perplexity(b) }),
    });
    const container = r.container as Uint8Array;
    const back = decompressModel(container, 'lm.qkc');
    expect(back.onnx).toEqual(r.onnx);

    // The position table shares a codebook (unpruned: no zero code); the matrices' 14 weights too.
    const pos = r.coded.find((t) => t.indices.startsWith('pos_'));
    expect(pos).toMatchObject({ count: 64 * 128, bits: 4, sparse: false });
    expect(r.coded).toHaveLength(15);
    // The mask exactly, as 2 values and one bit each; the 23 small trainable tensors as binary16.
    const mask = r.plain.find((p) => p.name === 'blocks.0.attn.mask');
    expect(mask).toMatchObject({ form: 'values', distinct: 2, bits: 1, count: 4096 });
    const halves = r.plain.filter((p) => p.form === 'float16');
    expect(halves).toHaveLength(23);
    expect(halves.reduce((s, p) => s + p.count, 0)).toBe(3661);

    // The Huffman row is what the container holds: its sections (but the graph's) plus the
    // initializers left in the graph (shape constants, the unpacking shifts).
    const sections = readContainer(container).sections;
    const skeleton = modelFromProto(decodeModel(sections.get('model') as Uint8Array, 'skeleton'), { label: 's' });
    const coded = new Set([...r.coded.flatMap((t) => [t.indices, t.codebook]), ...r.plain.map((p) => p.name)]);
    for (const name of coded) skeleton.graph.initializers.delete(name);
    let sectionBytes = 0;
    for (const [name, bytes] of sections) if (name !== 'model') sectionBytes += bytes.length;
    const huffman = r.stages.find((s) => s.stage === 'huffman');
    expect(huffman?.bytes).toBe(sectionBytes + totalInitializerBytes(skeleton));
    expect(huffman?.fileBytes).toBe(container.length);
    // The whole file, graph and header deflated, not only the weights: 10.88× data-free (1738523 / 159769 bytes).
    expect(huffman?.fileRatio).toBe(lm.length / container.length);
    expect(huffman?.fileRatio).toBeGreaterThanOrEqual(10);
    for (const [i, p] of r.plain.entries()) expect(sections.get(`p${i}`)?.length).toBe(plainBytes(p));

    // ORT runs the decoded model to the quantized stage's perplexity, within a few % of fp32's
    // one-shot (no fine-tuning) pruned model.
    const quantized = r.stages.find((s) => s.stage === 'quantized');
    expect(await perplexity(back.onnx)).toBe(quantized?.quality?.value);
    const pruned = r.stages.find((s) => s.stage === 'pruned')?.quality?.value as number;
    expect(quantized?.quality?.value).toBeLessThan(pruned * 1.05);
  }, 60_000);

  it('a header whose plain tensors name no float initializer, or another count, is refused by name', async () => {
    const r = await compressModel(lm, { kmeansBits: 4, tables: false, float16Vectors: false });
    const c = readContainer(r.container as Uint8Array);
    const edited = (edit: (p: Record<string, JsonValue>) => void) => {
      const plain = structuredClone(c.meta.plain) as Record<string, JsonValue>[];
      edit(plain[0] as Record<string, JsonValue>);
      return writeContainer({
        meta: { ...c.meta, plain },
        sections: [...c.sections].map(([name, bytes]) => ({ name, bytes })),
      });
    };
    expect(() =>
      decompressModel(
        edited((p) => void (p.name = 'nope')),
        'x.qkc',
      ),
    ).toThrow(/x\.qkc: tensor nope: the model has no float initializer/);
    expect(() =>
      decompressModel(
        edited((p) => void (p.name = 'input_ids')),
        'x.qkc',
      ),
    ).toThrow(/no float initializer/);
    expect(() =>
      decompressModel(
        edited((p) => void (p.count = 4095)),
        'x.qkc',
      ),
    ).toThrow(/4095 values for 4096 elements/);
  }, 60_000);

  it('`tables` and `float16Vectors` off: pos stays fp32, vectors stay float32 (the mask is still stored exactly)', async () => {
    const r = await compressModel(lm, { kmeansBits: 4, tables: false, float16Vectors: false });
    expect(r.coded).toHaveLength(14);
    expect(r.plain.map((p) => p.name)).toEqual(['blocks.0.attn.mask']);
    expect(decompressModel(r.container as Uint8Array).onnx).toEqual(r.onnx);
  }, 60_000);
});

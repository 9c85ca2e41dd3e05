import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { modelFromProto } from '../graph/from-onnx.js';
import { modelToProto } from '../graph/to-onnx.js';
import { readContainer, writeContainer, type JsonValue } from '../io/qkcz/container.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { pruneModel } from '../passes/prune.js';
import type { KMeansLayout } from '../passes/weight-only/types.js';
import { compressKMeansModel, decompressModel } from './compressed-model.js';
import { quantizeModel } from './quantize.js';

const cnn = readFileSync(new URL('../../models/cnn.onnx', import.meta.url));

/** The CNN, optionally pruned, as the kmeans scheme writes it, with its layouts. */
function kmeansCnn(prune: number, bits: number, perChannel = false): { onnx: Uint8Array; layouts: KMeansLayout[] } {
  const model = modelFromProto(decodeModel(cnn, 'cnn'), { label: 'cnn' });
  if (prune > 0) pruneModel(model, { sparsity: prune });
  const r = quantizeModel(model, { scheme: 'kmeans', bits, perChannel, keepZeros: prune > 0 });
  return {
    onnx: encodeModel(modelToProto(model)),
    layouts: r.report.layers.flatMap((l) => (l.kmeans ? [l.kmeans] : [])),
  };
}

describe('compressed model container', () => {
  // Smaller than the ONNX model where the Huffman code saves more than the header costs (on
  // this 38k-weight CNN, 2-bit codes at 50 % zeros save about as much as the header takes).
  for (const [prune, bits, perChannel, smaller] of [
    [0.8, 4, false, true],
    [0.5, 2, true, false],
    [0, 3, false, true],
    [0, 8, false, false],
  ] as const) {
    it(`prune ${prune}, ${bits}-bit${perChannel ? ' per channel' : ''}: decodes to the very ONNX bytes it was made from${smaller ? ', and is smaller' : ''}`, () => {
      const { onnx, layouts } = kmeansCnn(prune, bits, perChannel);
      expect(layouts).toHaveLength(4);
      const c = compressKMeansModel(onnx, layouts);
      if (prune === 0) expect(c.tensors.every((t) => !t.sparse)).toBe(true);
      const back = decompressModel(c.bytes, 'cnn.qkc');
      expect(back.onnx).toEqual(onnx);
      const fc1 = c.tensors.find((t) => t.count === 256 * 128);
      // At 80 % zeros the relative indices pay: exactly the non-zeros are stored, plus fillers.
      if (prune === 0.8) {
        expect(fc1?.sparse).toBe(true);
        expect((fc1?.entries ?? 0) - (fc1?.fillers ?? 0)).toBe(256 * 128 - Math.round(prune * 256 * 128));
      }
      if (smaller) expect(c.bytes.length).toBeLessThan(onnx.length);
    });
  }

  // The file beyond the coded tensors' sections (graph with its unpacking nodes, header, framing):
  // on a model this small it is a fifth of the file, so the unpacking graph is kept lean.
  it('prune 0.8, 4-bit: graph, header and framing take ≤ 2,150 bytes of the file (2,322 with one unpacking constant set per weight)', () => {
    const { onnx, layouts } = kmeansCnn(0.8, 4);
    const c = compressKMeansModel(onnx, layouts);
    const sections = readContainer(c.bytes).sections;
    const tensorBytes = [...sections].filter(([name]) => name !== 'model').reduce((n, [, b]) => n + b.length, 0);
    expect(c.bytes.length - tensorBytes).toBeLessThanOrEqual(2150);
  });

  /** A container whose header is rewritten (CRCs recomputed): what a hostile writer can make. */
  function rewritten(bytes: Uint8Array, edit: (tensors: Record<string, JsonValue>[]) => void): Uint8Array {
    const c = readContainer(bytes);
    const tensors = structuredClone(c.meta.tensors) as Record<string, JsonValue>[];
    edit(tensors);
    return writeContainer({
      meta: { ...c.meta, tensors },
      sections: [...c.sections].map(([name, b]) => ({ name, bytes: b })),
    });
  }

  it('a hostile header with valid CRCs is refused by name, never decoded into a wrong model', () => {
    const { onnx, layouts } = kmeansCnn(0.8, 4);
    const good = compressKMeansModel(onnx, layouts).bytes;
    const cases: [string, (t: Record<string, JsonValue>[]) => void, RegExp][] = [
      ['huge count', (t) => void ((t[2] as Record<string, JsonValue>).count = 2 ** 40), /indices do not fill/],
      ['more entries than bits', (t) => void ((t[2] as Record<string, JsonValue>).entries = 10 ** 9), /entries/],
      ['bits vs slot', (t) => void ((t[1] as Record<string, JsonValue>).bits = 5), /5-bit indices in 4-bit slots/],
      ['unknown initializer', (t) => void ((t[0] as Record<string, JsonValue>).indices = 'nope'), /no initializer/],
      ['gap width', (t) => void ((t[2] as Record<string, JsonValue>).gapBits = 12), /1 to 8 bits/],
      ['stream length', (t) => void ((t[3] as Record<string, JsonValue>).codeStreamBits = 3), /a section of \d+ bytes/],
      ['not an object', (t) => void ((t as JsonValue[])[0] = 7), /malformed/],
    ];
    for (const [what, edit, message] of cases) {
      expect(() => decompressModel(rewritten(good, edit), 'x.qkc'), what).toThrow(message);
    }
    // A flipped bit anywhere is caught by the container's CRCs before any decoding.
    for (let i = 0; i < good.length; i += 97) {
      const bad = good.slice();
      bad[i] = (bad[i] as number) ^ 1;
      expect(() => decompressModel(bad, 'x.qkc')).toThrow(/x\.qkc/);
    }
  });
});

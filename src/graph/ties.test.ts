import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import type { Tensor } from '../tensor/tensor.js';
import { modelFromProto } from './from-onnx.js';
import { findTies, hashBytes } from './ties.js';

const f32 = (dims: number[], seed: number): Tensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i + seed)),
});

describe('findTies', () => {
  it('finds a tied embedding read twice, and byte-identical copies under other names', () => {
    const emb = f32([10, 4], 1);
    const copy = f32([10, 4], 1);
    const other = f32([10, 4], 2);
    const lastBit: Tensor = { ...f32([10, 4], 1), data: Float32Array.from(emb.data as Float32Array) };
    (lastBit.data as Float32Array)[39] = -(lastBit.data as Float32Array)[39]!; // differs in one element only
    const m = modelFromProto(
      makeModel({
        nodes: [
          { opType: 'Gather', inputs: ['emb', 'ids'], outputs: ['e'], name: 'embed' },
          { opType: 'Gemm', inputs: ['e', 'emb'], outputs: ['logits'], name: 'lm_head', attributes: { transB: 1 } },
          { opType: 'Add', inputs: ['copy', 'other'], outputs: ['s'], name: 'add' },
          { opType: 'Add', inputs: ['s', 'lastBit'], outputs: ['t'], name: 'add2' },
        ],
        inputs: [{ name: 'ids', dtype: 'int64', dims: [3] }],
        outputs: [
          { name: 'logits', dtype: 'float32' },
          { name: 't', dtype: 'float32' },
        ],
        initializers: { emb, copy, other, lastBit, shortOne: f32([40], 1) },
      }),
    );
    const ties = findTies(m.graph);
    expect(ties.shared).toEqual([
      {
        name: 'emb',
        uses: [
          { node: 'embed', opType: 'Gather', slot: 0 },
          { node: 'lm_head', opType: 'Gemm', slot: 1 },
        ],
      },
    ]);
    // Same bytes but other dims ([40]) are not a duplicate: a weight's shape is part of it.
    expect(ties.duplicates).toEqual([{ names: ['emb', 'copy'], bytes: 160 }]);
  });

  it('hashBytes differs when one byte does, at any offset and alignment', () => {
    const b = new Uint8Array(37).map((_, i) => i * 7);
    const seen = new Set([hashBytes(b), hashBytes(b.subarray(1))]);
    for (let i = 0; i < b.length; i++) {
      const c = Uint8Array.from(b);
      c[i]! ^= 1;
      seen.add(hashBytes(c));
    }
    expect(seen.size).toBe(b.length + 2);
  });
});

import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { oneNodeModel, projectionsAsCopies } from '../src/flows/model-latency-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { decodeModel } from '../src/io/onnx/proto.js';

// The latency bounds the model-latency table prints beside the quantized forms: graphs that must
// keep the original's shapes and node structure, with the weight products made copies.

async function outputDims(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<number[][]> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run(feeds);
    return s.outputNames.map((n) => [...(out[n] as ort.Tensor).dims]);
  } finally {
    await s.release();
  }
}

describe('latency bounds', () => {
  it('projectionsAsCopies: no MatMul by a weight left, every other node kept, the outputs shaped as fp32', async () => {
    const lm = readFileSync('models/lm.onnx');
    const before = modelFromProto(decodeModel(lm)).graph;
    const after = modelFromProto(decodeModel(projectionsAsCopies(lm))).graph;
    const weightProducts = before.nodes.filter(
      (n) => n.opType === 'MatMul' && before.initializers.has(n.inputs[1] ?? ''),
    );
    expect(weightProducts.length).toBe(13);
    expect(after.nodes.filter((n) => n.opType === 'MatMul' && after.initializers.has(n.inputs[1] ?? ''))).toEqual([]);
    // fc1 (128 → 512) in each block takes a Concat of four copies before its Slice.
    expect(after.nodes.filter((n) => n.opType === 'Concat').length).toBe(
      before.nodes.filter((n) => n.opType === 'Concat').length + 2,
    );
    // Each projection's bias Add goes with it (the fused quantized forms take the bias in); the
    // residual Adds and every other node stay.
    const biasAdds = new Set(weightProducts.map((n) => `${n.name.slice(0, -'MatMul'.length)}Add`));
    expect(biasAdds.size).toBe(13);
    const kept = (g: typeof before) =>
      g.nodes.filter((n) => !['MatMul', 'Slice', 'Concat'].includes(n.opType) && !biasAdds.has(n.name));
    expect(kept(after).map((n) => n.name)).toEqual(kept(before).map((n) => n.name));
    for (const name of biasAdds) {
      expect(before.nodes.some((n) => n.name === name && n.opType === 'Add')).toBe(true);
      expect(after.nodes.some((n) => n.name === name)).toBe(false);
    }
    for (const n of weightProducts) expect(after.initializers.has(n.inputs[1] as string)).toBe(false);
    const ids = new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: 10 }, (_, i) => BigInt(i)),
      [2, 5],
    );
    expect(await outputDims(projectionsAsCopies(lm), { input_ids: ids })).toEqual(
      await outputDims(lm, { input_ids: ids }),
    );
  });
  it('oneNodeModel: one Flatten of the first input', async () => {
    const one = oneNodeModel(readFileSync('models/cnn.onnx'));
    expect(modelFromProto(decodeModel(one)).graph.nodes.map((n) => n.opType)).toEqual(['Flatten']);
    const x = new ort.Tensor('float32', new Float32Array(3 * 64), [3, 1, 8, 8]);
    expect(await outputDims(one, { input: x })).toEqual([[3, 64]]);
  });
});

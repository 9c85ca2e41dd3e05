import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { decodeModel, encodeModel } from '../io/onnx/proto.js';
import { makeTensor } from '../tensor/tensor.js';
import { modelFromProto } from './from-onnx.js';
import { axisBounds, idBounds } from './input-bounds.js';

const REPO = join(import.meta.dirname, '..', '..');

async function runs(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<boolean> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 4 });
  try {
    await s.run(feeds);
    return true;
  } catch {
    return false;
  } finally {
    await s.release();
  }
}

const ids = (n: number, value = 1n) => new ort.Tensor('int64', new BigInt64Array(n).fill(value), [1, n]);

describe('input bounds a model implies', () => {
  it('the shipped LM: the bounds found are exactly where ONNX Runtime starts to fail', async () => {
    const bytes = readFileSync(join(REPO, 'models', 'lm.onnx'));
    const g = modelFromProto(decodeModel(bytes)).graph;
    const [seq] = axisBounds(g);
    const [vocab] = idBounds(g);
    expect(seq).toMatchObject({ input: 'input_ids', axis: 1, table: 'pos' });
    expect(vocab).toMatchObject({ input: 'input_ids', table: 'tok.weight' });
    const maxLen = (seq as { max: number }).max;
    const rows = (vocab as { rows: number }).rows;
    expect(await runs(bytes, { input_ids: ids(maxLen) })).toBe(true);
    expect(await runs(bytes, { input_ids: ids(maxLen + 1) })).toBe(false);
    expect(await runs(bytes, { input_ids: ids(4, BigInt(rows - 1)) })).toBe(true);
    expect(await runs(bytes, { input_ids: ids(4, BigInt(rows)) })).toBe(false);
  });

  it('Gather(table, Range(0, Shape(x)[1], 1)) bounds axis 1 by the table rows; other graphs give no bound', async () => {
    const spec = {
      nodes: [
        { opType: 'Shape', inputs: ['x'], outputs: ['s'] },
        { opType: 'Gather', inputs: ['s', 'one'], outputs: ['T'] },
        { opType: 'Range', inputs: ['zero', 'T', 'step'], outputs: ['pos'] },
        { opType: 'Gather', inputs: ['table', 'pos'], outputs: ['p'] },
        { opType: 'Add', inputs: ['x', 'p'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dtype: 'float32' as const, dims: ['b', 't', 4] }],
      outputs: [{ name: 'y', dtype: 'float32' as const }],
      initializers: {
        one: makeTensor('int64', [], BigInt64Array.of(1n)),
        zero: makeTensor('int64', [], BigInt64Array.of(0n)),
        step: makeTensor('int64', [], BigInt64Array.of(1n)),
        table: makeTensor('float32', [6, 4], new Float32Array(24)),
      },
      opsets: { '': 17 },
    };
    const bytes = encodeModel(makeModel(spec));
    expect(axisBounds(modelFromProto(decodeModel(bytes)).graph)).toEqual([
      { input: 'x', axis: 1, max: 6, table: 'table' },
    ]);
    const x = (t: number) => new ort.Tensor('float32', new Float32Array(t * 4), [1, t, 4]);
    expect(await runs(bytes, { x: x(6) })).toBe(true);
    expect(await runs(bytes, { x: x(7) })).toBe(false);
    const cnn = modelFromProto(decodeModel(readFileSync(join(REPO, 'models', 'cnn.onnx')))).graph;
    expect([...axisBounds(cnn), ...idBounds(cnn)]).toEqual([]);
  });
});

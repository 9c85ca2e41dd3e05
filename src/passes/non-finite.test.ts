import { describe, expect, it } from 'vitest';
import { memoryInitializer, type Model } from '../graph/model.js';
import { makeTensor } from '../tensor/tensor.js';
import { findNonFiniteParameters, overflowingWeight, resolveNonFinite } from './non-finite.js';

/** x → MatMul W → Add B → Where(mask, -inf, ·): a -inf constant that is legitimate. */
function model(w: number[], b: number[]): Model {
  const inits = new Map([
    ['W', memoryInitializer('W', makeTensor('float32', [2, 2], Float32Array.from(w)))],
    ['B', memoryInitializer('B', makeTensor('float32', [2], Float32Array.from(b)))],
    ['NEG', memoryInitializer('NEG', makeTensor('float32', [], Float32Array.of(-Infinity)))],
  ]);
  return {
    irVersion: 8,
    opsets: new Map([['', 17]]),
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    metadata: [],
    graph: {
      name: 'g',
      initializers: inits,
      valueInfo: new Map(),
      inputs: [
        { name: 'x', dtype: 'float32', dims: [1, 2] },
        { name: 'm', dtype: 'bool', dims: [1, 2] },
      ],
      outputs: [{ name: 'y', dtype: 'float32', dims: [1, 2] }],
      nodes: [
        { name: 'mm', opType: 'MatMul', domain: '', inputs: ['x', 'W'], outputs: ['h0'], attributes: [] },
        { name: 'add', opType: 'Add', domain: '', inputs: ['h0', 'B'], outputs: ['h'], attributes: [] },
        { name: 'mask', opType: 'Where', domain: '', inputs: ['m', 'NEG', 'h'], outputs: ['y'], attributes: [] },
      ],
    },
  };
}

const values = (m: Model, name: string) => [...(m.graph.initializers.get(name)?.load().data as Float32Array)];

describe('non-finite parameters', () => {
  it('NaN anywhere and ±Inf in a weight are found; a -inf mask constant is not', () => {
    expect(findNonFiniteParameters(model([1, 2, 3, 4], [0, 0]))).toEqual([]);
    expect(findNonFiniteParameters(model([1, Infinity, 3, -Infinity], [0, NaN]))).toEqual([
      { name: 'W', index: 1, value: Infinity, count: 2, readers: ['mm'] },
      { name: 'B', index: 1, value: NaN, count: 1, readers: ['add'] },
    ]);
    expect(findNonFiniteParameters(model([1, 2, 3, 4], [Infinity, 0]))).toEqual([]); // ±Inf outside a weight slot
  });

  it("'error' names the tensor; 'clamp' maps NaN to 0 and ±Inf to the finite extremes; 'keep' excludes the tensor and its readers", () => {
    expect(() => resolveNonFinite(model([1, NaN, 3, 4], [0, 0]), 'error')).toThrow(
      expect.objectContaining({
        code: 'QK_NONFINITE_WEIGHTS',
        message: "tensor 'W' has a non-finite value (NaN) at flat index 1",
        hint: expect.stringMatching(/`nonFinite` clamp.*`nonFinite` keep/),
        options: ['nonFinite'],
      }),
    );
    const m = model([-2, Infinity, NaN, -Infinity], [NaN, 0.5]);
    const r = resolveNonFinite(m, 'clamp');
    expect(values(m, 'W')).toEqual([-2, -2, 0, -2]); // the only finite value, -2, is both extremes
    expect(values(m, 'B')).toEqual([0, 0.5]);
    expect(values(m, 'NEG')).toEqual([-Infinity]);
    expect(r.notes[0]).toMatch(/'W' \(3\), 'B' \(1\)/);
    const k = resolveNonFinite(model([1, NaN, 3, 4], [0, 0]), 'keep');
    expect(k.exclude).toEqual(['W', 'mm']);
  });

  it('a weight whose square overflows float32 is named; one just inside is not', () => {
    expect(overflowingWeight(model([1, 3e38, 0, 0], [0, 0]))).toEqual({ name: 'W', value: Math.fround(3e38) });
    expect(overflowingWeight(model([1, 1.8e19, 0, 0], [0, 0]))).toBeUndefined();
  });
});

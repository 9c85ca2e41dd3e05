import { describe, expect, it } from 'vitest';
import { makeTensor } from '../../tensor/tensor.js';
import { opContext } from '../op.js';
import { Flatten, Reshape, Transpose } from './shape.js';

const x = makeTensor(
  'int32',
  [2, 3, 4],
  Int32Array.from({ length: 24 }, (_, i) => i),
);
const shape = (...d: bigint[]) => makeTensor('int64', [d.length], BigInt64Array.from(d));

describe('shape ops', () => {
  it('Reshape copies 0 dims and infers -1; allowzero keeps a literal 0', () => {
    expect(Reshape([x, shape(0n, -1n)], opContext())[0]?.dims).toEqual([2, 12]);
    const empty = makeTensor('float32', [0, 3], new Float32Array(0));
    expect(Reshape([empty, shape(3n, 0n)], opContext({ allowzero: 1 }))[0]?.dims).toEqual([3, 0]);
    expect(() => Reshape([x, shape(5n, -1n)], opContext())).toThrow(expect.objectContaining({ code: 'QK_BAD_SHAPE' }));
  });

  it('Flatten splits at axis (negative counts from the back)', () => {
    expect(Flatten([x], opContext({ axis: -1 }))[0]?.dims).toEqual([6, 4]);
    expect(Flatten([x], opContext({ axis: 0 }))[0]?.dims).toEqual([1, 24]);
  });

  it('Transpose moves element [i, j, k] to [k, i, j] for perm [2, 0, 1]', () => {
    const y = Transpose([x], opContext({ perm: [2, 0, 1] }))[0]!;
    expect(y.dims).toEqual([4, 2, 3]);
    const d = y.data as Int32Array;
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++)
        for (let k = 0; k < 4; k++) {
          expect(d[k * 6 + i * 3 + j]).toBe(i * 12 + j * 4 + k);
        }
  });
});

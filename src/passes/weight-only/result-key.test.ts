import { describe, expect, it } from 'vitest';
import {
  bnb4Key,
  idOf,
  int8Key,
  nbitsKey,
  ResultMap,
  viewIdOf,
  type NBitsKey,
  type ResultKey,
  type ViewId,
} from './result-key.js';

describe('typed result keys', () => {
  const o = { bits: 4, blockSize: 32, symmetric: true, rtn: false } as const;

  it('a map finds a result by an equal key built afresh, field by field', () => {
    const m = new ResultMap<NBitsKey, string>();
    m.set(nbitsKey({ weight: 'w|T|1', transposed: false, alpha: 1 }, o), 'plain');
    m.set(nbitsKey({ weight: 'w', transposed: true, alpha: 1 }, o), 'transposed');
    expect(m.get(nbitsKey({ weight: 'w|T|1', transposed: false, alpha: 1 }, { ...o }))).toBe('plain');
    expect(
      m.get(nbitsKey({ weight: 'w', transposed: true, alpha: 1 }, { bits: 4, blockSize: 32, symmetric: true })),
    ).toBe('transposed'); // rtn absent = false
    expect(m.get(nbitsKey({ weight: 'w', transposed: false, alpha: 1 }, o))).toBeUndefined();
    expect(m.get(nbitsKey({ weight: 'w', transposed: true, alpha: 0.5 }, o))).toBeUndefined();
    expect(m.get(nbitsKey({ weight: 'w', transposed: true, alpha: 1 }, { ...o, rtn: true }))).toBeUndefined();
    expect(m.size).toBe(2);
  });

  it('names holding the characters a string key would split on never make two keys equal', () => {
    const names = ['w', 'w|', '|w', 'w|T', 'w|T|1', 'w||1', 'w|nbits|4', '"w"', 'w","x', 'w\\', '[', ''];
    const views: ViewId[] = names.flatMap((weight) =>
      [true, false].flatMap((transposed) => [1, 0.5, NaN, Infinity].map((alpha) => ({ weight, transposed, alpha }))),
    );
    const keys: ResultKey[] = [
      ...views.map((v) => nbitsKey(v, o)),
      ...views.map((v) => nbitsKey(v, { ...o, symmetric: false })),
      ...views.map((v) => bnb4Key(v, 'nf4', 64, false)),
      ...names.flatMap((w) => [0, 1].map((axis) => int8Key(w, axis))),
    ];
    expect(new Set(keys.map(idOf)).size).toBe(keys.length);
    expect(new Set(views.map(viewIdOf)).size).toBe(views.length);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFloat16, float16Table } from '../formats/float16.js';
import {
  checkedPlain,
  decodePlain,
  encodePlain,
  isFloat16Exact,
  plainBytes,
  type PlainTensor,
} from './plain-tensors.js';

const damaged = (why: string) => new Error(why);
const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function roundTrip(data: Float32Array): PlainTensor | undefined {
  const e = encodePlain('t', data);
  if (!e) return undefined;
  expect(e.bytes.length).toBe(plainBytes(e.tensor));
  const back = decodePlain(checkedPlain(JSON.parse(JSON.stringify(e.tensor)), 0, damaged), e.bytes, 't', damaged);
  expect(bitsOf(back)).toEqual(bitsOf(data));
  return e.tensor;
}

describe('exact storage of float tensors outside the codebooks', () => {
  it('a 64×64 additive causal mask: two values, one bit each, decoded bit for bit', () => {
    const mask = new Float32Array(64 * 64).map((_, i) => (i % 64 > Math.floor(i / 64) ? -10000 : 0));
    const t = roundTrip(mask);
    expect(t).toMatchObject({ form: 'values', distinct: 2, bits: 1, codeStreamBits: 4096 });
    expect(plainBytes(t as PlainTensor)).toBe(2 * 4 + 2 + 512);
  });

  it('−0, +0, ±Inf and NaN payloads are distinct values and come back as the same bit patterns', () => {
    const patterns = Uint32Array.from(
      { length: 3000 },
      (_, i) => [0x80000000, 0, 0x7f800000, 0xff800000, 0x7fc00001, 0xffc12345, 0x3f800000][i % 7] as number,
    );
    const t = roundTrip(new Float32Array(patterns.buffer));
    expect(t).toMatchObject({ form: 'values', distinct: 7, bits: 3 });
  });

  it('every finite binary16 value, as float32, is stored in two bytes and read back exactly', () => {
    const all = float16Table().filter((x) => Number.isFinite(x));
    expect(isFloat16Exact(all)).toBe(true);
    const t = roundTrip(all);
    expect(t).toMatchObject({ form: 'float16', count: all.length });
    expect(plainBytes(t as PlainTensor)).toBe(2 * all.length);
  });

  it('property: tensors of ≤ 256 values or of binary16 values round-trip; others are left to float32', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: false }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 100, max: 2000 }),
        fc.boolean(),
        (pool, n, half) => {
          const values = half ? pool.map((x) => decodeFloat16(Math.abs(Math.fround(x) * 1000) % 65536)) : pool;
          const data = Float32Array.from({ length: n }, (_, i) => values[(i * 7919) % values.length] as number);
          const t = roundTrip(data);
          const distinct = new Set(bitsOf(data)).size;
          // Stored only when it saves: never larger than float32 once stored.
          if (t) expect(plainBytes(t)).toBeLessThan(4 * n);
          // binary16 halves the bytes; ≤ 16 values cost ≤ 16 · 4 + 16 bytes and < 5 bits an element.
          if (isFloat16Exact(data) || distinct <= 16) expect(t).toBeDefined();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('values that are neither few nor binary16 are not stored this way', () => {
    const noise = Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i) * 1.2345678);
    expect(isFloat16Exact(noise)).toBe(false);
    expect(encodePlain('w', noise)).toBeUndefined();
  });

  it('a hostile header entry or section is refused by name', () => {
    const e = encodePlain(
      'mask',
      new Float32Array(2048).map((_, i) => (i % 3 === 0 ? -1e4 : 0)),
    );
    const good = e?.tensor as PlainTensor;
    const bad: [unknown, RegExp][] = [
      [{ ...good, form: 'bf16' }, /entry 0 is malformed/],
      [{ ...good, distinct: 9, bits: 3 }, /9 distinct values with 3-bit indices/],
      [{ ...good, codeStreamBits: 10 }, /2048 values in 10 bits/],
      [{ ...good, form: 'float16' }, /float16 with index fields/],
      [7, /malformed/],
    ];
    for (const [entry, message] of bad) expect(() => checkedPlain(entry, 0, damaged)).toThrow(message);
    expect(() => decodePlain(good, (e?.bytes as Uint8Array).subarray(1), 'x', damaged)).toThrow(/a section of/);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CODE_BITS, canonicalCode, codeLengths, huffmanDecode, huffmanEncode, symbolCounts } from './huffman.js';

const bitsOf = (code: number, len: number) => code.toString(2).padStart(len, '0');

function roundTrip(symbols: Uint8Array, alphabet: number): { bits: number; lengths: Uint8Array } {
  const lengths = codeLengths(symbolCounts(symbols, alphabet));
  const code = canonicalCode(lengths);
  const { bytes, bits } = huffmanEncode(symbols, code);
  expect(Array.from(huffmanDecode(bytes, bits, lengths, symbols.length))).toEqual(Array.from(symbols));
  return { bits, lengths };
}

describe('canonical Huffman', () => {
  it('RFC 1951 §3.2.2 example: lengths (3,3,3,3,3,2,4,4) give codes 010 011 100 101 110 00 1110 1111', () => {
    const c = canonicalCode(Uint8Array.of(3, 3, 3, 3, 3, 2, 4, 4));
    expect(Array.from(c.codes, (code, s) => bitsOf(code, c.lengths[s] as number))).toEqual([
      '010',
      '011',
      '100',
      '101',
      '110',
      '00',
      '1110',
      '1111',
    ]);
  });

  it('hand-worked: counts 5, 2, 1, 1 → lengths 1, 2, 3, 3 and the stream "a b a c d" is 0 10 0 110 111', () => {
    const lengths = codeLengths([5, 2, 1, 1]);
    expect(Array.from(lengths)).toEqual([1, 2, 3, 3]);
    const { bytes, bits } = huffmanEncode([0, 1, 0, 2, 3], canonicalCode(lengths));
    expect(bits).toBe(10);
    expect(
      Array.from(bytes, (b) => bitsOf(b, 8))
        .join('')
        .slice(0, 10),
    ).toBe('0100110111');
  });

  it('a single used symbol takes one bit per symbol; an empty stream takes none', () => {
    const r = roundTrip(new Uint8Array(37).fill(9), 16);
    expect(r.bits).toBe(37);
    expect(r.lengths[9]).toBe(1);
    expect(roundTrip(new Uint8Array(0), 16).bits).toBe(0);
  });

  it('skewed (Fibonacci) counts that would need 30-bit codes are capped at 24 bits (≤ 0.1 % longer) and still round-trip', () => {
    const counts: number[] = [1, 1];
    while (counts.length < 32)
      counts.push((counts[counts.length - 1] as number) + (counts[counts.length - 2] as number));
    expect(Math.max(...codeLengths(counts, 64))).toBe(31); // the uncapped optimum
    const lengths = codeLengths(counts);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(MAX_CODE_BITS);
    const cost = (l: Uint8Array) => counts.reduce((s, c, i) => s + c * (l[i] as number), 0);
    expect(cost(lengths) / cost(codeLengths(counts, 64))).toBeLessThan(1.001);
    const symbols: number[] = [];
    counts.forEach((c, s) => {
      for (let i = 0; i < Math.min(c, 50); i++) symbols.push(s);
    });
    const code = canonicalCode(lengths);
    const { bytes, bits } = huffmanEncode(symbols, code);
    expect(Array.from(huffmanDecode(bytes, bits, lengths, symbols.length))).toEqual(symbols);
  });

  it('average length within [H, H + 1) of the entropy, and decoding inverts encoding (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), fc.integer({ min: 1, max: 8 }), (raw, bits) => {
        const symbols = raw.map((v) => v >> (8 - bits));
        const alphabet = 2 ** bits;
        const { bits: total } = roundTrip(symbols, alphabet);
        const counts = symbolCounts(symbols, alphabet);
        let h = 0;
        for (const c of counts) if (c > 0) h -= c * Math.log2(c / symbols.length);
        const used = counts.filter((c) => c > 0).length;
        if (used > 1) {
          expect(total).toBeGreaterThanOrEqual(h - 1e-9);
          expect(total).toBeLessThan(h + symbols.length);
        } else expect(total).toBe(symbols.length);
      }),
    );
  });

  it('damaged streams and tables are named errors', () => {
    const lengths = Uint8Array.of(1, 2, 3, 3);
    const { bytes, bits } = huffmanEncode([0, 1, 2, 3, 3], canonicalCode(lengths));
    expect(() => huffmanDecode(bytes, bits - 1, lengths, 5)).toThrow(/ends after 4 of 5/);
    expect(() => huffmanDecode(bytes, bits, lengths, 4)).toThrow(/left over/);
    expect(() => huffmanDecode(bytes, 1000, lengths, 5)).toThrow(/1000 bits in 2 bytes/);
    expect(() => canonicalCode(Uint8Array.of(1, 1, 1))).toThrow(/over-subscribed/);
    // An incomplete code (only "0" used): the stream "1…" hits a code no symbol has.
    expect(() => huffmanDecode(Uint8Array.of(0xff), 8, Uint8Array.of(1, 0), 1)).toThrow(/no symbol has/);
    expect(() => canonicalCode(Uint8Array.of(30))).toThrow(/30 bits/);
    const padded = bytes.slice();
    padded[1] = (padded[1] as number) | 1; // 13 bits used of 16
    expect(() => huffmanDecode(padded, bits, lengths, 5)).toThrow(/padding/);
  });
});

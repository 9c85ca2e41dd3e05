import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packSubByte, unpackSubByte } from './pack.js';

describe('packSubByte / unpackSubByte', () => {
  it('float4.md / int4.md layout: pack(x, y) = y << 4 | x & 0x0F; odd counts pad the last high nibble with 0', () => {
    expect(Array.from(packSubByte([1, -2, 7], 4))).toEqual([0xe1, 0x07]);
    expect(Array.from(unpackSubByte(Uint8Array.from([0xe1, 0x07]), 3, 4, true))).toEqual([1, -2, 7]);
    expect(Array.from(unpackSubByte(Uint8Array.from([0xe1, 0x07]), 3, 4, false))).toEqual([1, 14, 7]);
    // 2-bit: first element in the lowest bits (test_cast_FLOAT_to_INT2: -3..3 → bytes 0x39 0x39).
    expect(Array.from(packSubByte([1, -2, -1, 0, 1, -2, -1], 2))).toEqual([0x39, 0x39]);
  });

  it('unpack(pack(v)) is the identity for in-range values of every sub-byte type', () => {
    for (const [bits, signed] of [
      [4, true],
      [4, false],
      [2, true],
      [2, false],
    ] as const) {
      const lo = signed ? -(2 ** (bits - 1)) : 0;
      const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      fc.assert(
        fc.property(fc.array(fc.integer({ min: lo, max: hi }), { maxLength: 67 }), (v) => {
          const packed = packSubByte(v, bits);
          return (
            packed.length === Math.ceil((v.length * bits) / 8) &&
            Array.from(unpackSubByte(packed, v.length, bits, signed)).every((x, i) => x === v[i])
          );
        }),
        { numRuns: 500 },
      );
    }
  });

  it('rejects packed data shorter than the element count needs', () => {
    expect(() => unpackSubByte(new Uint8Array(1), 3, 4, true)).toThrow(/QK|bytes/);
  });
});

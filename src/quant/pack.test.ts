import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packCodes, unpackCodes } from './pack.js';
import { pack, quantize, unpack } from './quantize.js';

describe('packing codes to bytes', () => {
  it('hand-worked layouts: ONNX low nibble first, bitsandbytes high nibble first, int2, 16-bit LE', () => {
    expect(Array.from(packCodes(Int8Array.of(1, -1, 7), 4))).toEqual([0xf1, 0x07]);
    expect(Array.from(packCodes(Uint8Array.of(1, 15, 7), 4, 'high-first'))).toEqual([0x1f, 0x70]);
    expect(Array.from(packCodes(Int8Array.of(1, -1, -2, 0, 1), 2))).toEqual([0b00101101, 0b01]);
    expect(Array.from(packCodes(Int16Array.of(-2, 0x1234), 16))).toEqual([0xfe, 0xff, 0x34, 0x12]);
    expect(Array.from(packCodes(Uint8Array.of(5, 2, 7), 3))).toEqual([0b11010101, 0b1]);
    expect(Array.from(packCodes(Int8Array.of(-128, 127), 8))).toEqual([0x80, 0x7f]);
  });
  it('pack ∘ unpack is the identity for every width, signedness and nibble order', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 16),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.integer(), { maxLength: 70 }),
        (bits, signed, highFirst, raw) => {
          const order = highFirst && bits === 4 ? 'high-first' : 'low-first';
          const lo = signed ? -(2 ** (bits - 1)) : 0;
          const span = 2 ** bits;
          const vals = raw.map((v) => lo + (((v % span) + span) % span));
          const codes =
            bits === 16
              ? signed
                ? Int16Array.from(vals)
                : Uint16Array.from(vals)
              : signed
                ? Int8Array.from(vals)
                : Uint8Array.from(vals);
          const bytes = packCodes(codes, bits, order);
          expect(bytes.length).toBe(bits === 16 ? 2 * vals.length : Math.ceil((vals.length * bits) / 8));
          expect(Array.from(unpackCodes(bytes, vals.length, bits, signed, order))).toEqual(vals);
        },
      ),
    );
  });
  it('every public format packs and unpacks back to its codes', () => {
    const data = Float32Array.from({ length: 77 }, (_, i) => Math.sin(i * 1.3) * 3);
    for (const format of [
      'int8',
      'uint8',
      'int4',
      'uint4',
      'int2',
      'nf4',
      'fp4',
      'fp4-bnb',
      'float8e4m3fn',
      'float8e5m2',
      'float16',
      'bfloat16',
      'kmeans',
      'quantile',
      'dynamic-tree8',
    ] as const) {
      const q = quantize(data, { format, bits: format === 'kmeans' || format === 'quantile' ? 3 : undefined });
      expect(Array.from(unpack(pack(q), q))).toEqual(Array.from(q.codes));
    }
  });
});

import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../errors.js';
import { dequantize, quantize } from './quantize.js';

const w = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i * 0.3));

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return isQuantkitError(e) ? e.code : `not a QuantkitError: ${String(e)}`;
  }
}

describe('quantize() specs', () => {
  it("the CLI's scheme names mean the library format they stand for", () => {
    const pairs = [
      [{ format: 'q4' }, { format: 'int4', blockSize: 32 }],
      [
        { format: 'q4-asym', blockSize: 64 },
        { format: 'uint4', blockSize: 64 },
      ],
      [{ format: 'q8-block' }, { format: 'int8', blockSize: 32 }],
      [{ format: 'bf16' }, { format: 'bfloat16' }],
      [{ format: 'fp8' }, { format: 'float8e4m3fn' }],
    ] as const;
    for (const [alias, plain] of pairs) {
      const a = quantize(w, alias as never);
      const p = quantize(w, plain);
      expect(a.spec.format).toBe(plain.format);
      expect([...a.codes]).toEqual([...p.codes]);
      expect([...dequantize(a)]).toEqual([...dequantize(p)]);
    }
  });

  it('a missing spec, an unknown format or a block size below 1 is a QuantkitError naming the valid values', () => {
    expect(codeOf(() => quantize(w, undefined as never))).toBe('QK_QUANT_SPEC');
    expect(() => quantize(w, undefined as never)).toThrow(/nf4.*q4/);
    expect(() => quantize(w, { format: 'int3' } as never)).toThrow(
      /unknown quantization format 'int3': use one of int8, .*nf4.*q4/,
    );
    for (const format of ['int4', 'nf4', 'fp4', 'kmeans', 'float16'] as const) {
      for (const blockSize of [0, -1, 1.5])
        expect(codeOf(() => quantize(w, { format, blockSize }))).toBe('QK_BAD_BLOCK_SIZE');
    }
    expect(codeOf(() => quantize([1, 2] as never, { format: 'int8' }))).toBe('QK_QUANT_DATA');
  });
});

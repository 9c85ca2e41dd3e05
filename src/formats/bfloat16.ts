import type { MinifloatSpec } from './minifloat.js';
import { encodeMinifloat } from './minifloat.js';

/** bfloat16: the top half of a float32 — 1 sign, 8 exponent (bias 127), 7 mantissa bits. */
export const BFLOAT16: MinifloatSpec = {
  mantissaBits: 7, exponentBits: 8, bias: 127,
  maxCode: 0x7f7f, infCode: 0x7f80, nanCode: 0x7fc0, nanSign: 'signed', unsignedZero: false,
};

/**
 * Bits of the bfloat16 nearest to the exact value of `x`, ties to even; ±Inf when out of range
 * (ONNX Cast to bfloat16 rounds to nearest even; truncation is not what the spec asks for).
 */
export function encodeBfloat16(x: number): number {
  return encodeMinifloat(x, BFLOAT16, false);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Exact value of bfloat16 `bits`: the float32 whose high half they are. */
export function decodeBfloat16(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0] as number;
}

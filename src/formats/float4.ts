import type { MinifloatSpec } from './minifloat.js';
import { decodeMinifloat, encodeMinifloat } from './minifloat.js';

/** float4e2m1 (float4.md): 1 sign, 2 exponent (bias 1), 1 mantissa bit; no Inf, no NaN; max 6. */
export const FLOAT4E2M1: MinifloatSpec = {
  mantissaBits: 1, exponentBits: 2, bias: 1,
  maxCode: 0x7, infCode: -1, nanCode: -1, nanSign: 'signed', unsignedZero: false,
};

/** Code NaN encodes to; see encodeFloat4e2m1. */
export const FLOAT4E2M1_NAN_CODE = 0x7;

/**
 * 4-bit code (0..15) of the float4e2m1 nearest to the exact value of `x`, ties to even, following
 * float4.md's Cast table: always saturating (|x| > 6 and ±Inf → ±6; the Cast `saturate`
 * attribute applies to float8 only, and with no Inf/NaN codes there is nothing else to give),
 * ±0 → ±0, NaN → +6.
 */
export function encodeFloat4e2m1(x: number): number {
  return encodeMinifloat(x, FLOAT4E2M1, true, FLOAT4E2M1_NAN_CODE);
}

const TABLE = new Float64Array(16);
for (let c = 0; c < 16; c++) TABLE[c] = decodeMinifloat(c, FLOAT4E2M1, () => false, () => false);

/** Exact value of float4e2m1 `code` (low 4 bits used). */
export function decodeFloat4e2m1(code: number): number {
  return TABLE[code & 0xf] as number;
}

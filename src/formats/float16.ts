import type { MinifloatSpec } from './minifloat.js';
import { decodeMinifloat, encodeMinifloat } from './minifloat.js';

/** IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
export const FLOAT16: MinifloatSpec = {
  mantissaBits: 10, exponentBits: 5, bias: 15,
  maxCode: 0x7bff, infCode: 0x7c00, nanCode: 0x7e00, nanSign: 'signed', unsignedZero: false,
};

/**
 * Bits of the float16 nearest to the exact value of `x`, ties to even (IEEE roundTiesToEven;
 * ONNX Cast to float16: ±Inf when out of range — the saturate attribute is for float8 only).
 * Encoding straight from the double avoids the double rounding of going through float32.
 */
export function encodeFloat16(x: number): number {
  return encodeMinifloat(x, FLOAT16, false);
}

let table: Float32Array | undefined;

function decodeTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let c = 0; c < 65536; c++) {
      table[c] = decodeMinifloat(c, FLOAT16, (k) => (k & 0x7c00) === 0x7c00 && (k & 0x3ff) !== 0, (k) => (k & 0x7fff) === 0x7c00);
    }
  }
  return table;
}

/** Exact value of float16 `bits` (every float16 is exact in float32 and float64). */
export function decodeFloat16(bits: number): number {
  return decodeTable()[bits & 0xffff] as number;
}

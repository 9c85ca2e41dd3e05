import { QuantkitError } from '../errors.js';

/**
 * Sub-byte packing as ONNX stores int4/uint4/float4e2m1 (two per byte) and int2/uint2 (four per
 * byte): the first element goes in the lowest bits. A trailing partial byte is zero-padded.
 * Values are taken modulo 2^bits, so signed values pack as their two's-complement low bits.
 */
export function packSubByte(values: ArrayLike<number>, bits: 2 | 4): Uint8Array {
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil(values.length / perByte));
  for (let i = 0; i < values.length; i++) {
    const v = (values[i] as number) & mask;
    const byte = (i / perByte) | 0;
    out[byte] = (out[byte] as number) | (v << ((i % perByte) * bits));
  }
  return out;
}

/**
 * Inverse of packSubByte: `count` elements from `bytes`; signed elements are sign-extended from
 * `bits`. Returns Int8Array for signed, Uint8Array for unsigned (the tensor storage classes).
 */
export function unpackSubByte(bytes: Uint8Array, count: number, bits: 2 | 4, signed: boolean): Int8Array | Uint8Array {
  const perByte = 8 / bits;
  const need = Math.ceil(count / perByte);
  if (bytes.length < need) {
    throw new QuantkitError(
      'QK_PACKED_DATA_TOO_SHORT',
      `packed ${bits}-bit data has ${bytes.length} bytes but ${count} elements need ${need}`,
      'check the tensor dims against its data',
    );
  }
  const mask = (1 << bits) - 1;
  const shift = 32 - bits;
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const v = ((bytes[(i / perByte) | 0] as number) >> ((i % perByte) * bits)) & mask;
    out[i] = signed ? (v << shift) >> shift : v;
  }
  return out;
}

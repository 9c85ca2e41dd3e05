import { QuantkitError } from '../errors.js';
import { packSubByte, unpackSubByte } from '../formats/pack.js';

/**
 * Codes to bytes. 16-bit codes little-endian; 8-bit one per byte (two's complement for signed);
 * 4- and 2-bit codes packed as ONNX stores int4/uint4/float4e2m1/int2 — first element in the low
 * bits. bitsandbytes packs 4-bit codes the other way round: its kQuantizeBlockwise writes
 * `code(x[2j]) << 4 | code(x[2j+1])`, first element in the HIGH nibble ('high-first'). Other
 * widths (1, 3, 5, 6, 7 bits, e.g. k-means codebooks) are a little-endian bit stream.
 */
export type NibbleOrder = 'low-first' | 'high-first';

export type Codes = Int8Array | Uint8Array | Int16Array | Uint16Array;

export function packCodes(codes: Codes, bits: number, order: NibbleOrder = 'low-first'): Uint8Array {
  if (order === 'high-first') {
    if (bits !== 4)
      throw new QuantkitError(
        'QK_BAD_PACK',
        `high-nibble-first packing is defined for 4-bit codes, not ${bits}-bit`,
        "use order 'low-first'",
      );
    const out = new Uint8Array(Math.ceil(codes.length / 2));
    for (let i = 0; i < codes.length; i++) {
      const v = (codes[i] as number) & 15;
      out[i >> 1] = (out[i >> 1] as number) | ((i & 1) === 0 ? v << 4 : v);
    }
    return out;
  }
  if (bits === 16) {
    const out = new Uint8Array(codes.length * 2);
    for (let i = 0; i < codes.length; i++) {
      const v = (codes[i] as number) & 0xffff;
      out[2 * i] = v & 0xff;
      out[2 * i + 1] = v >>> 8;
    }
    return out;
  }
  if (bits === 8) {
    const out = new Uint8Array(codes.length);
    out.set(codes instanceof Int8Array ? new Uint8Array(codes.buffer, codes.byteOffset, codes.length) : codes);
    return out;
  }
  if (bits === 4 || bits === 2) return packSubByte(codes, bits);
  if (!Number.isInteger(bits) || bits < 1 || bits > 8)
    throw new QuantkitError('QK_BAD_PACK', `cannot pack ${bits}-bit codes`, 'use 1–8 or 16 bits');
  const out = new Uint8Array(Math.ceil((codes.length * bits) / 8));
  const mask = (1 << bits) - 1;
  for (let i = 0, bit = 0; i < codes.length; i++, bit += bits) {
    const v = (codes[i] as number) & mask;
    const byte = bit >> 3;
    const sh = bit & 7;
    out[byte] = (out[byte] as number) | ((v << sh) & 0xff);
    if (sh + bits > 8) out[byte + 1] = (out[byte + 1] as number) | (v >> (8 - sh));
  }
  return out;
}

/** Inverse of packCodes: `count` codes, sign-extended when `signed`. */
export function unpackCodes(
  bytes: Uint8Array,
  count: number,
  bits: number,
  signed: boolean,
  order: NibbleOrder = 'low-first',
): Codes {
  const need = bits === 16 ? count * 2 : Math.ceil((count * bits) / 8);
  if (bytes.length < need) {
    throw new QuantkitError(
      'QK_PACKED_DATA_TOO_SHORT',
      `packed ${bits}-bit data has ${bytes.length} bytes but ${count} codes need ${need}`,
      'check the element count against the data',
    );
  }
  if (bits === 16) {
    const out = signed ? new Int16Array(count) : new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = (bytes[2 * i] as number) | ((bytes[2 * i + 1] as number) << 8);
    return out;
  }
  if (order === 'high-first') {
    if (bits !== 4)
      throw new QuantkitError(
        'QK_BAD_PACK',
        `high-nibble-first packing is defined for 4-bit codes, not ${bits}-bit`,
        "use order 'low-first'",
      );
    const out = signed ? new Int8Array(count) : new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const v = ((bytes[i >> 1] as number) >> ((i & 1) === 0 ? 4 : 0)) & 15;
      out[i] = signed ? (v << 28) >> 28 : v;
    }
    return out;
  }
  if (bits === 4 || bits === 2) return unpackSubByte(bytes, count, bits, signed);
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  const mask = (1 << bits) - 1;
  const shift = 32 - bits;
  for (let i = 0, bit = 0; i < count; i++, bit += bits) {
    const byte = bit >> 3;
    const sh = bit & 7;
    const word = (bytes[byte] as number) | (sh + bits > 8 ? (bytes[byte + 1] as number) << 8 : 0);
    const v = (word >> sh) & mask;
    out[i] = signed ? (v << shift) >> shift : v;
  }
  return out;
}

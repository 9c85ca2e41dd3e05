import { QuantkitError } from '../../errors.js';
import { crc32 } from './crc32.js';

/*
 * The quantkit compressed container (.qkc): a JSON header and named binary sections, each with a
 * CRC-32, so that a damaged or hostile file fails with a named error before anything is decoded.
 * What the sections hold (a model's skeleton, Huffman tables and bitstreams) is the writer's
 * business (flows/compressed-model.ts); docs/compressed-format.md describes both layers.
 *
 *   offset   bytes  field
 *   0        4      magic "QKCZ" (51 4B 43 5A)
 *   4        2      format version, u16 little-endian (CONTAINER_VERSION)
 *   6        2      reserved, 0
 *   8        4      H, the header's byte length, u32 little-endian
 *   12       H      header, UTF-8 JSON object:
 *                     { "sections": [{ "name", "offset", "length", "crc32" }, …],
 *                       "payloadBytes": N, "meta": { … } }
 *   12 + H   4      CRC-32 of the H header bytes, u32 little-endian
 *   16 + H   N      payload: the sections; offsets relative to the payload's start, in order,
 *                   back to back (no hole, no overlap), the last one ending at N
 * The file ends at 16 + H + N exactly.
 */

export const CONTAINER_MAGIC = Uint8Array.of(0x51, 0x4b, 0x43, 0x5a);
export const CONTAINER_VERSION = 1;
/** Headers above this are refused before they are decoded. */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ContainerContent {
  /** The writer's own description of the sections. */
  readonly meta: { [key: string]: JsonValue };
  readonly sections: readonly { readonly name: string; readonly bytes: Uint8Array }[];
}

export function writeContainer(content: ContainerContent): Uint8Array {
  let offset = 0;
  const entries = content.sections.map((s) => {
    const e = { name: s.name, offset, length: s.bytes.length, crc32: crc32(s.bytes) };
    offset += s.bytes.length;
    return e;
  });
  const header = new TextEncoder().encode(
    JSON.stringify({ sections: entries, payloadBytes: offset, meta: content.meta }),
  );
  const out = new Uint8Array(16 + header.length + offset);
  const view = new DataView(out.buffer);
  out.set(CONTAINER_MAGIC, 0);
  view.setUint16(4, CONTAINER_VERSION, true);
  view.setUint32(8, header.length, true);
  out.set(header, 12);
  view.setUint32(12 + header.length, crc32(header), true);
  let at = 16 + header.length;
  for (const s of content.sections) {
    out.set(s.bytes, at);
    at += s.bytes.length;
  }
  return out;
}

function corrupt(file: string, why: string): QuantkitError {
  return new QuantkitError(
    'QK_COMPRESSED_CORRUPT',
    `${file}: ${why}`,
    'the file is damaged or not written by quantkit compress; write it again',
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export interface Container {
  readonly meta: { [key: string]: JsonValue };
  /** Section bytes by name (views of the file's bytes). */
  readonly sections: ReadonlyMap<string, Uint8Array>;
}

/** Reads and checks a container: magic, version, lengths, the header's and every section's CRC. */
export function readContainer(bytes: Uint8Array, file = '<container>'): Container {
  if (bytes.length < 16 || CONTAINER_MAGIC.some((b, i) => bytes[i] !== b))
    throw new QuantkitError(
      'QK_COMPRESSED_NOT_CONTAINER',
      `${file} is not a quantkit compressed file (no QKCZ magic)`,
      'give a file written by quantkit compress',
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(4, true);
  if (version !== CONTAINER_VERSION)
    throw new QuantkitError(
      'QK_COMPRESSED_VERSION',
      `${file} is container version ${version}; this quantkit reads version ${CONTAINER_VERSION}`,
      'use the quantkit that wrote it, or compress the model again',
    );
  if (view.getUint16(6, true) !== 0) throw corrupt(file, 'the reserved field is not 0');
  const h = view.getUint32(8, true);
  if (h > MAX_HEADER_BYTES || 16 + h > bytes.length)
    throw corrupt(file, `a header of ${h} bytes in a file of ${bytes.length}`);
  const headerBytes = bytes.subarray(12, 12 + h);
  if (crc32(headerBytes) !== view.getUint32(12 + h, true)) throw corrupt(file, 'the header fails its CRC-32');
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    throw corrupt(file, 'the header is not UTF-8 JSON');
  }
  if (!isObject(header) || !Array.isArray(header.sections) || !isCount(header.payloadBytes) || !isObject(header.meta))
    throw corrupt(file, 'the header lacks sections, payloadBytes or meta');
  const payload = 16 + h;
  if (payload + header.payloadBytes !== bytes.length)
    throw corrupt(file, `the payload is ${bytes.length - payload} bytes, the header says ${header.payloadBytes}`);
  const sections = new Map<string, Uint8Array>();
  let expected = 0;
  for (const s of header.sections as unknown[]) {
    if (!isObject(s) || typeof s.name !== 'string' || !isCount(s.offset) || !isCount(s.length) || !isCount(s.crc32))
      throw corrupt(file, 'a section entry lacks name, offset, length or crc32');
    if (s.offset !== expected || s.offset + s.length > header.payloadBytes)
      throw corrupt(
        file,
        `section '${s.name}' at ${s.offset}+${s.length} does not follow the one before (${expected})`,
      );
    if (sections.has(s.name)) throw corrupt(file, `section '${s.name}' appears twice`);
    const data = bytes.subarray(payload + s.offset, payload + s.offset + s.length);
    if (crc32(data) !== s.crc32) throw corrupt(file, `section '${s.name}' fails its CRC-32`);
    sections.set(s.name, data);
    expected = s.offset + s.length;
  }
  if (expected !== header.payloadBytes)
    throw corrupt(file, `${header.payloadBytes - expected} payload bytes belong to no section`);
  return { meta: header.meta as { [key: string]: JsonValue }, sections };
}

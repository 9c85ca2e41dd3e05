import { deflateSync, inflateSync } from 'fflate';
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
 *   8        4      H, the stored header's byte length, u32 little-endian
 *   12       4      U, the header's byte length once inflated, u32 little-endian
 *   16       H      header, a raw DEFLATE stream (RFC 1951) of a UTF-8 JSON object:
 *                     { "sections": [{ "name", "length", "crc32", "inflated"? }, …], "meta": { … } }
 *   16 + H   4      CRC-32 of the H stored header bytes, u32 little-endian
 *   20 + H   N      payload: the sections; offsets relative to the payload's start, in order,
 *                   back to back (no hole, no overlap), the last one ending at N
 * The file ends at 20 + H + N exactly. A section with "inflated" is stored as a raw DEFLATE
 * stream of that many bytes; its length and CRC-32 are those of the stored stream, so damage is
 * found before anything is inflated. Offsets and N follow from the lengths (the sections are
 * back to back). Versions 2 (still read) gave each section's "offset" and the header's
 * "payloadBytes" too, which a small model paid for in header bytes; version 1 (still read) had
 * no U field either, a plain JSON header at offset 12 and no deflated sections.
 */

export const CONTAINER_MAGIC = Uint8Array.of(0x51, 0x4b, 0x43, 0x5a);
export const CONTAINER_VERSION = 3;
/** Headers above this (inflated) are refused before they are decoded. */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;
/** Sections above this (inflated) are refused before they are inflated. */
export const MAX_INFLATED_SECTION_BYTES = 1024 * 1024 * 1024;
/**
 * DEFLATE's largest expansion: a 258-byte match coded in 2 bits (zlib's technical notes give
 * 1032:1), so a declared length above 1032 × the stored bytes cannot be honest.
 */
const DEFLATE_MAX_RATIO = 1032;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ContainerContent {
  /** The writer's own description of the sections. */
  readonly meta: { [key: string]: JsonValue };
  readonly sections: readonly {
    readonly name: string;
    readonly bytes: Uint8Array;
    /** Store the section deflated when that is smaller. */
    readonly deflate?: boolean;
  }[];
}

const deflated = (bytes: Uint8Array): Uint8Array => deflateSync(bytes, { level: 9 });

export function writeContainer(content: ContainerContent): Uint8Array {
  let offset = 0;
  const stored = content.sections.map((s) => {
    const d = s.deflate ? deflated(s.bytes) : undefined;
    return d && d.length < s.bytes.length ? { bytes: d, inflated: s.bytes.length } : { bytes: s.bytes };
  });
  const entries = content.sections.map((s, i) => {
    const { bytes, inflated } = stored[i] as { bytes: Uint8Array; inflated?: number };
    const e = { name: s.name, length: bytes.length, crc32: crc32(bytes), ...(inflated ? { inflated } : {}) };
    offset += bytes.length;
    return e;
  });
  const json = new TextEncoder().encode(JSON.stringify({ sections: entries, meta: content.meta }));
  const header = deflated(json);
  const out = new Uint8Array(20 + header.length + offset);
  const view = new DataView(out.buffer);
  out.set(CONTAINER_MAGIC, 0);
  view.setUint16(4, CONTAINER_VERSION, true);
  view.setUint32(8, header.length, true);
  view.setUint32(12, json.length, true);
  out.set(header, 16);
  view.setUint32(16 + header.length, crc32(header), true);
  let at = 20 + header.length;
  for (const s of stored) {
    out.set(s.bytes, at);
    at += s.bytes.length;
  }
  return out;
}

/**
 * Inflates a raw DEFLATE stream that MUST give exactly `length` bytes: the output buffer is
 * allocated from the declared length (capped by the caller), one byte longer so a stream that
 * runs past it shows (fflate drops what overflows a given buffer).
 */
function inflateExactly(stream: Uint8Array, length: number, what: string, file: string): Uint8Array {
  if (length > DEFLATE_MAX_RATIO * stream.length)
    throw corrupt(file, `${what}: ${stream.length} deflated bytes cannot inflate to the ${length} declared`);
  let out: Uint8Array;
  try {
    out = inflateSync(stream, { out: new Uint8Array(length + 1) });
  } catch (e) {
    throw corrupt(file, `${what} is not a valid deflate stream (${e instanceof Error ? e.message : String(e)})`);
  }
  if (out.length !== length)
    throw corrupt(
      file,
      `${what} inflates to ${out.length > length ? `more than ${length}` : out.length} bytes, not ${length}`,
    );
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
  if (version < 1 || version > CONTAINER_VERSION)
    throw new QuantkitError(
      'QK_COMPRESSED_VERSION',
      `${file} is container version ${version}; this quantkit reads versions 1 to ${CONTAINER_VERSION}`,
      'use the quantkit that wrote it, or compress the model again',
    );
  if (view.getUint16(6, true) !== 0) throw corrupt(file, 'the reserved field is not 0');
  // Version 1: no inflated-length field, a plain header.
  const start = version === 1 ? 12 : 16;
  if (bytes.length < start + 4) throw corrupt(file, `${bytes.length} bytes hold no header`);
  const h = view.getUint32(8, true);
  if (h > MAX_HEADER_BYTES || start + 4 + h > bytes.length)
    throw corrupt(file, `a header of ${h} bytes in a file of ${bytes.length}`);
  const storedHeader = bytes.subarray(start, start + h);
  if (crc32(storedHeader) !== view.getUint32(start + h, true)) throw corrupt(file, 'the header fails its CRC-32');
  let headerBytes = storedHeader;
  if (version !== 1) {
    const u = view.getUint32(12, true);
    if (u > MAX_HEADER_BYTES)
      throw corrupt(file, `a header declared as ${u} bytes inflated (at most ${MAX_HEADER_BYTES})`);
    headerBytes = inflateExactly(storedHeader, u, 'the header', file);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    throw corrupt(file, 'the header is not UTF-8 JSON');
  }
  // Version 3 leaves offsets and the payload length to follow from the section lengths.
  const derived = version >= 3;
  if (
    !isObject(header) ||
    !Array.isArray(header.sections) ||
    (!derived && !isCount(header.payloadBytes)) ||
    !isObject(header.meta)
  )
    throw corrupt(file, `the header lacks sections${derived ? '' : ', payloadBytes'} or meta`);
  const entries = header.sections as unknown[];
  for (const s of entries)
    if (
      !isObject(s) ||
      typeof s.name !== 'string' ||
      (!derived && !isCount(s.offset)) ||
      !isCount(s.length) ||
      !isCount(s.crc32)
    )
      throw corrupt(file, `a section entry lacks name, ${derived ? '' : 'offset, '}length or crc32`);
  const checked = entries as { name: string; offset?: number; length: number; crc32: number; inflated?: unknown }[];
  const payloadBytes = derived ? checked.reduce((n, s) => n + s.length, 0) : (header.payloadBytes as number);
  const payload = start + 4 + h;
  if (payload + payloadBytes !== bytes.length)
    throw corrupt(file, `the payload is ${bytes.length - payload} bytes, the header says ${payloadBytes}`);
  const sections = new Map<string, Uint8Array>();
  const stored: { name: string; data: Uint8Array; inflated: number | undefined }[] = [];
  const names = new Set<string>();
  let expected = 0;
  for (const s of checked) {
    const offset = s.offset ?? expected;
    if (offset !== expected || offset + s.length > payloadBytes)
      throw corrupt(file, `section '${s.name}' at ${offset}+${s.length} does not follow the one before (${expected})`);
    if (names.has(s.name)) throw corrupt(file, `section '${s.name}' appears twice`);
    names.add(s.name);
    if (s.inflated !== undefined && (version === 1 || !isCount(s.inflated)))
      throw corrupt(file, `section '${s.name}' has an inflated length of ${JSON.stringify(s.inflated)}`);
    if (s.inflated !== undefined && s.inflated > MAX_INFLATED_SECTION_BYTES)
      throw corrupt(
        file,
        `section '${s.name}' declares ${s.inflated} bytes inflated (at most ${MAX_INFLATED_SECTION_BYTES})`,
      );
    const data = bytes.subarray(payload + offset, payload + offset + s.length);
    if (crc32(data) !== s.crc32) throw corrupt(file, `section '${s.name}' fails its CRC-32`);
    stored.push({ name: s.name, data, inflated: s.inflated });
    expected = offset + s.length;
  }
  if (expected !== payloadBytes) throw corrupt(file, `${payloadBytes - expected} payload bytes belong to no section`);
  // Inflated only once every section's place and CRC are checked.
  for (const s of stored)
    sections.set(
      s.name,
      s.inflated === undefined ? s.data : inflateExactly(s.data, s.inflated, `section '${s.name}'`, file),
    );
  return { meta: header.meta as { [key: string]: JsonValue }, sections };
}

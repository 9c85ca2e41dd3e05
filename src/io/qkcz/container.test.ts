import { describe, expect, it } from 'vitest';
import { CONTAINER_VERSION, readContainer, writeContainer } from './container.js';
import { crc32 } from './crc32.js';

describe('compressed container', () => {
  it('CRC-32 check value: "123456789" → 0xCBF43926 (the catalogue value of CRC-32/ISO-HDLC)', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  const content = {
    meta: { kind: 'test', n: 3 },
    sections: [
      { name: 'a', bytes: Uint8Array.of(1, 2, 3) },
      { name: 'empty', bytes: new Uint8Array(0) },
      { name: 'b', bytes: Uint8Array.of(9) },
    ],
  };

  it('round-trips meta and sections; the layout is magic, version, header length, header, CRC, payload', () => {
    const bytes = writeContainer(content);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x51, 0x4b, 0x43, 0x5a]);
    expect(bytes[4]).toBe(CONTAINER_VERSION);
    const c = readContainer(bytes);
    expect(c.meta).toEqual({ kind: 'test', n: 3 });
    expect([...c.sections.keys()]).toEqual(['a', 'empty', 'b']);
    expect(Array.from(c.sections.get('a') ?? [])).toEqual([1, 2, 3]);
    expect(bytes.length).toBe(16 + new DataView(bytes.buffer).getUint32(8, true) + 4);
  });

  it('every single-byte change and every truncation is a named error, never a wrong result', () => {
    const bytes = writeContainer(content);
    for (let i = 0; i < bytes.length; i++) {
      const bad = bytes.slice();
      bad[i] = (bad[i] as number) ^ 0x20;
      expect(() => readContainer(bad, 'x.qkc'), `byte ${i}`).toThrow(/x\.qkc/);
      expect(() => readContainer(bytes.subarray(0, i), 'x.qkc'), `length ${i}`).toThrow(/x\.qkc/);
    }
  });

  it('names the magic, the version and an extra byte', () => {
    expect(() => readContainer(new TextEncoder().encode('PK\u0003\u0004 not ours at all'), 'a.zip')).toThrow(
      expect.objectContaining({ code: 'QK_COMPRESSED_NOT_CONTAINER' }),
    );
    const v2 = writeContainer(content);
    v2[4] = 2;
    expect(() => readContainer(v2)).toThrow(expect.objectContaining({ code: 'QK_COMPRESSED_VERSION' }));
    const longer = new Uint8Array(writeContainer(content).length + 1);
    longer.set(writeContainer(content));
    expect(() => readContainer(longer)).toThrow(/payload is 5 bytes, the header says 4/);
  });
});

import { deflateSync, inflateSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { CONTAINER_VERSION, MAX_HEADER_BYTES, readContainer, writeContainer } from './container.js';
import { crc32 } from './crc32.js';

/** A container laid out by hand from docs/compressed-format.md, for files the writer never makes. */
function handMade(
  version: 1 | 2,
  header: unknown,
  payload: Uint8Array,
  opts: { storedHeader?: Uint8Array; inflatedLength?: number } = {},
): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const stored = opts.storedHeader ?? (version === 1 ? json : deflateSync(json));
  const start = version === 1 ? 12 : 16;
  const out = new Uint8Array(start + stored.length + 4 + payload.length);
  const view = new DataView(out.buffer);
  out.set([0x51, 0x4b, 0x43, 0x5a]);
  view.setUint16(4, version, true);
  view.setUint32(8, stored.length, true);
  if (version === 2) view.setUint32(12, opts.inflatedLength ?? json.length, true);
  out.set(stored, start);
  view.setUint32(start + stored.length, crc32(stored), true);
  out.set(payload, start + stored.length + 4);
  return out;
}

/** A version 2 container of one section stored as `stored`, declared to inflate to `inflated` bytes. */
function oneSection(stored: Uint8Array, inflated: number): Uint8Array {
  const section = { name: 'model', offset: 0, length: stored.length, crc32: crc32(stored), inflated };
  return handMade(2, { sections: [section], payloadBytes: stored.length, meta: {} }, stored);
}

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

  it('round-trips meta and sections; the layout is magic, version, header lengths, deflated header, CRC, payload', () => {
    const bytes = writeContainer(content);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x51, 0x4b, 0x43, 0x5a]);
    expect(bytes[4]).toBe(CONTAINER_VERSION);
    const c = readContainer(bytes);
    expect(c.meta).toEqual({ kind: 'test', n: 3 });
    expect([...c.sections.keys()]).toEqual(['a', 'empty', 'b']);
    expect(Array.from(c.sections.get('a') ?? [])).toEqual([1, 2, 3]);
    const view = new DataView(bytes.buffer);
    const h = view.getUint32(8, true);
    expect(bytes.length).toBe(20 + h + 4);
    // The header is a raw DEFLATE stream (fflate's inflate, not our reader, decodes it).
    const json = inflateSync(bytes.subarray(16, 16 + h));
    expect(json.length).toBe(view.getUint32(12, true));
    const header = JSON.parse(new TextDecoder().decode(json)) as { meta: unknown; sections: object[] };
    expect(header.meta).toEqual({ kind: 'test', n: 3 });
    // Version 3: offsets and the payload length follow from the lengths, so the header omits them.
    expect(Object.keys(header)).toEqual(['sections', 'meta']);
    expect(header.sections.map((e) => Object.keys(e))).toEqual([
      ['name', 'length', 'crc32'],
      ['name', 'length', 'crc32'],
      ['name', 'length', 'crc32'],
    ]);
  });

  it('reads version 2 containers (offsets and payloadBytes in the header) and checks them', () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(9);
    const sections = [
      { name: 'a', offset: 0, length: 3, crc32: crc32(a) },
      { name: 'b', offset: 3, length: 1, crc32: crc32(b) },
    ];
    const payload = Uint8Array.of(...a, ...b);
    const c = readContainer(handMade(2, { sections, payloadBytes: 4, meta: { k: 2 } }, payload));
    expect(c.meta).toEqual({ k: 2 });
    expect(Array.from(c.sections.get('b') ?? [])).toEqual([9]);
    const gap = [sections[0], { ...sections[1], offset: 2 }];
    expect(() => readContainer(handMade(2, { sections: gap, payloadBytes: 4, meta: {} }, payload))).toThrow(
      /section 'b' at 2\+1 does not follow the one before \(3\)/,
    );
    expect(() => readContainer(handMade(2, { sections, meta: {} }, payload))).toThrow(/lacks sections, payloadBytes/);
  });

  it('a section marked deflate is stored deflated when that is smaller, and read back as it was', () => {
    const text = new TextEncoder().encode('kmeans/unpack/'.repeat(200));
    const noise = Uint8Array.from({ length: 300 }, (_, i) => (i * 2654435761) >>> 24);
    const bytes = writeContainer({
      meta: {},
      sections: [
        { name: 'text', bytes: text, deflate: true },
        { name: 'noise', bytes: noise, deflate: true },
      ],
    });
    expect(bytes.length).toBeLessThan(text.length / 4 + noise.length + 200);
    const c = readContainer(bytes);
    expect(c.sections.get('text')).toEqual(text);
    expect(c.sections.get('noise')).toEqual(noise);
    const h = new DataView(bytes.buffer).getUint32(8, true);
    const header = JSON.parse(new TextDecoder().decode(inflateSync(bytes.subarray(16, 16 + h)))) as {
      sections: { name: string; length: number; inflated?: number }[];
    };
    expect(header.sections.map((s) => s.inflated)).toEqual([text.length, undefined]);
    expect(header.sections[1]?.length).toBe(noise.length);
  });

  it('reads version 1 containers (plain JSON header at offset 12, no deflated sections)', () => {
    const payload = Uint8Array.of(7, 8);
    const v1 = handMade(
      1,
      { sections: [{ name: 's', offset: 0, length: 2, crc32: crc32(payload) }], payloadBytes: 2, meta: { k: 1 } },
      payload,
    );
    const c = readContainer(v1, 'old.qkc');
    expect(c.meta).toEqual({ k: 1 });
    expect(Array.from(c.sections.get('s') ?? [])).toEqual([7, 8]);
    const deflatedInV1 = handMade(
      1,
      {
        sections: [{ name: 's', offset: 0, length: 2, crc32: crc32(payload), inflated: 2 }],
        payloadBytes: 2,
        meta: {},
      },
      payload,
    );
    expect(() => readContainer(deflatedInV1, 'old.qkc')).toThrow(/old\.qkc: section 's' has an inflated length/);
  });

  it('a corrupt deflate stream behind a valid CRC is refused by name (header and section)', () => {
    const garbage = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    const header = handMade(2, {}, new Uint8Array(0), { storedHeader: garbage, inflatedLength: 10 });
    expect(() => readContainer(header, 'bad.qkc')).toThrow(
      expect.objectContaining({
        code: 'QK_COMPRESSED_CORRUPT',
        message: expect.stringMatching(/^bad\.qkc: the header is not a valid deflate stream/),
      }),
    );
    expect(() => readContainer(oneSection(garbage, 10), 'bad.qkc')).toThrow(
      expect.objectContaining({
        code: 'QK_COMPRESSED_CORRUPT',
        message: expect.stringMatching(/^bad\.qkc: section 'model' is not a valid deflate stream/),
      }),
    );
    // Cut short: the stream ends before its last block.
    const cut = deflateSync(new TextEncoder().encode('a graph '.repeat(100))).subarray(0, 8);
    expect(() => readContainer(oneSection(cut, 800), 'cut.qkc')).toThrow(/cut\.qkc: section 'model'/);
  });

  it("a declared inflated length that is too large, or not the stream's, is refused before or while inflating", () => {
    const data = new TextEncoder().encode('Gather Cast BitShift '.repeat(50));
    const stored = deflateSync(data);
    expect(readContainer(oneSection(stored, data.length)).sections.get('model')).toEqual(data);
    expect(() => readContainer(oneSection(stored, data.length - 1), 'x.qkc')).toThrow(
      `x.qkc: section 'model' inflates to more than ${data.length - 1} bytes, not ${data.length - 1}`,
    );
    expect(() => readContainer(oneSection(stored, data.length + 1), 'x.qkc')).toThrow(
      `x.qkc: section 'model' inflates to ${data.length} bytes, not ${data.length + 1}`,
    );
    // Over-size declarations: refused from the numbers alone (no allocation of the declared size).
    expect(() => readContainer(oneSection(stored, 2 ** 40), 'x.qkc')).toThrow(
      /x\.qkc: section 'model' declares 1099511627776 bytes inflated \(at most 1073741824\)/,
    );
    expect(() => readContainer(oneSection(stored, 1033 * stored.length), 'x.qkc')).toThrow(
      `x.qkc: section 'model': ${stored.length} deflated bytes cannot inflate to the ${1033 * stored.length} declared`,
    );
    const json = new TextEncoder().encode(JSON.stringify({ sections: [], payloadBytes: 0, meta: {} }));
    const bigHeader = handMade(2, {}, new Uint8Array(0), {
      storedHeader: deflateSync(json),
      inflatedLength: MAX_HEADER_BYTES + 1,
    });
    expect(() => readContainer(bigHeader, 'h.qkc')).toThrow(
      expect.objectContaining({
        code: 'QK_COMPRESSED_CORRUPT',
        message: expect.stringMatching(/^h\.qkc: a header declared as 67108865 bytes/),
      }),
    );
  });

  it('every single-byte change and every truncation is a named error, never a wrong result', () => {
    const bytes = writeContainer({
      ...content,
      sections: [...content.sections, { name: 'z', bytes: new Uint8Array(64).fill(5), deflate: true }],
    });
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
    const v4 = writeContainer(content);
    v4[4] = 4;
    expect(() => readContainer(v4)).toThrow(expect.objectContaining({ code: 'QK_COMPRESSED_VERSION' }));
    const longer = new Uint8Array(writeContainer(content).length + 1);
    longer.set(writeContainer(content));
    expect(() => readContainer(longer)).toThrow(/payload is 5 bytes, the header says 4/);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JsonError, JsonNumber, parseStrictJson, type JsonValue } from './strict-json.js';

/** Back to plain JS so results compare against JSON.parse, the independent reference. */
function plain(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return v.value;
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function errorOf(text: string): JsonError {
  try {
    parseStrictJson(text);
  } catch (e) {
    if (e instanceof JsonError) return e;
    throw e;
  }
  throw new Error(`parsed: ${text}`);
}

describe('parseStrictJson', () => {
  it('agrees with JSON.parse on every JSON value fast-check makes (no duplicate keys there)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        // JSON.parse is the reference; -0 prints as 0 so compare after the same round trip.
        expect(plain(parseStrictJson(text))).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes escapes and surrogate pairs', () => {
    expect(parseStrictJson('"a\\n\\t\\"\\\\\\/\\u00e9\\ud83d\\ude00"')).toBe('a\n\t"\\/é😀');
  });

  it('marks integer literals and only those', () => {
    const [a, b, c, d] = parseStrictJson('[12, 12.0, 1e3, 9007199254740993]') as JsonNumber[];
    expect(a?.safeInteger).toBe(12);
    expect(b?.safeInteger).toBeUndefined();
    expect(c?.safeInteger).toBeUndefined();
    expect(d?.safeInteger).toBeUndefined(); // 2^53 + 1 is not exact in a double
  });

  it('keeps a "__proto__" key as plain data', () => {
    const v = parseStrictJson('{"__proto__": "x"}') as Map<string, JsonValue>;
    expect(v.get('__proto__')).toBe('x');
  });

  it.each([
    ['duplicate-key', '{"a":1,"a":2}'],
    ['duplicate-key', '{"a":{"b":1,"b":1}}'],
    ['syntax', '{"a":1,}'],
    ['syntax', '[1,]'],
    ['syntax', '01'],
    ['syntax', '1.'],
    ['syntax', '-'],
    ['syntax', '"\\ud800"'],
    ['syntax', '"\\udc00"'],
    ['syntax', '"\\ud800\\u0041"'],
    ['syntax', '"a\u0001"'],
    ['syntax', '"\\x41"'],
    ['syntax', '"abc'],
    ['syntax', '{"a" 1}'],
    ['syntax', 'tru'],
    ['syntax', '{} {}'],
    ['syntax', ''],
    ['syntax', 'NaN'],
    ['too-deep', '['.repeat(100000)],
  ])('refuses %s: %j', (kind, text) => {
    expect(errorOf(text).kind).toBe(kind);
  });

  it('reports the key path of a duplicate', () => {
    expect(errorOf('{"t":{"dtype":"F32","dtype":"F16"}}').path).toEqual(['t']);
    expect(errorOf('{"t":1,"t":2}').path).toEqual([]);
  });
});

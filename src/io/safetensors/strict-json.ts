/**
 * A strict JSON (RFC 8259) parser for hostile headers. JSON.parse is not enough for a format
 * spec that says duplicate keys are disallowed: it keeps the last one silently, and it turns
 * `1e3` or `2.0` into integers where the reference reader (serde_json into usize) refuses them.
 * So objects come back as Maps (insertion order, no prototype games with `__proto__`), numbers
 * keep whether they were written as plain integers, and nesting depth is bounded so a header of
 * ten million `[` cannot exhaust the stack.
 */

export class JsonNumber {
  constructor(
    readonly value: number,
    readonly integerLiteral: boolean,
  ) {}

  /** The value if the literal was a plain integer that a double holds exactly, else undefined. */
  get safeInteger(): number | undefined {
    return this.integerLiteral && Number.isSafeInteger(this.value) ? this.value : undefined;
  }
}

export type JsonValue = string | JsonNumber | boolean | null | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

export type JsonErrorKind = 'syntax' | 'duplicate-key' | 'too-deep';

/** Thrown by parseStrictJson; `path` holds the object keys leading to the fault. */
export class JsonError extends Error {
  constructor(
    readonly kind: JsonErrorKind,
    message: string,
    readonly position: number,
    readonly path: readonly string[],
  ) {
    super(message);
    this.name = 'JsonError';
  }
}

const DEFAULT_MAX_DEPTH = 64;

export function parseStrictJson(text: string, maxDepth = DEFAULT_MAX_DEPTH): JsonValue {
  const p = new Parser(text, maxDepth);
  p.skipWhitespace();
  const value = p.parseValue(0);
  p.skipWhitespace();
  if (p.pos !== text.length) p.fail('unexpected text after the JSON value');
  return value;
}

// Character codes used by the scanner.
const QUOTE = 0x22,
  BACKSLASH = 0x5c,
  COMMA = 0x2c,
  COLON = 0x3a;
const LBRACE = 0x7b,
  RBRACE = 0x7d,
  LBRACKET = 0x5b,
  RBRACKET = 0x5d;
const MINUS = 0x2d,
  PLUS = 0x2b,
  DOT = 0x2e,
  ZERO = 0x30,
  NINE = 0x39;

class Parser {
  pos = 0;
  private readonly path: string[] = [];

  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
  ) {}

  fail(message: string, kind: JsonErrorKind = 'syntax'): never {
    throw new JsonError(kind, `${message} at character ${this.pos}`, this.pos, [...this.path]);
  }

  skipWhitespace(): void {
    const s = this.s;
    let i = this.pos;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.pos = i;
  }

  parseValue(depth: number): JsonValue {
    const c = this.s.charCodeAt(this.pos);
    switch (c) {
      case LBRACE:
        return this.parseObject(depth + 1);
      case LBRACKET:
        return this.parseArray(depth + 1);
      case QUOTE:
        return this.parseString();
      case 0x74:
        return this.literal('true', true);
      case 0x66:
        return this.literal('false', false);
      case 0x6e:
        return this.literal('null', null);
      default:
        if (c === MINUS || (c >= ZERO && c <= NINE)) return this.parseNumber();
        return this.fail(Number.isNaN(c) ? 'unexpected end of JSON' : `unexpected character '${this.s[this.pos]}'`);
    }
  }

  private literal<T extends boolean | null>(word: string, value: T): T {
    if (!this.s.startsWith(word, this.pos)) this.fail(`expected '${word}'`);
    this.pos += word.length;
    return value;
  }

  private enter(depth: number): void {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth} levels`, 'too-deep');
  }

  private parseObject(depth: number): JsonObject {
    this.enter(depth);
    const out: JsonObject = new Map();
    this.pos++; // '{'
    this.skipWhitespace();
    if (this.s.charCodeAt(this.pos) === RBRACE) {
      this.pos++;
      return out;
    }
    for (;;) {
      if (this.s.charCodeAt(this.pos) !== QUOTE) this.fail('expected a string key');
      const keyPos = this.pos;
      const key = this.parseString();
      if (out.has(key)) {
        this.pos = keyPos;
        this.fail(`duplicate key ${JSON.stringify(key)}`, 'duplicate-key');
      }
      this.skipWhitespace();
      if (this.s.charCodeAt(this.pos) !== COLON) this.fail("expected ':'");
      this.pos++;
      this.skipWhitespace();
      this.path.push(key);
      out.set(key, this.parseValue(depth));
      this.path.pop();
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.pos);
      this.pos++;
      if (c === RBRACE) return out;
      if (c !== COMMA) {
        this.pos--;
        this.fail("expected ',' or '}'");
      }
      this.skipWhitespace();
    }
  }

  private parseArray(depth: number): JsonValue[] {
    this.enter(depth);
    const out: JsonValue[] = [];
    this.pos++; // '['
    this.skipWhitespace();
    if (this.s.charCodeAt(this.pos) === RBRACKET) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue(depth));
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.pos);
      this.pos++;
      if (c === RBRACKET) return out;
      if (c !== COMMA) {
        this.pos--;
        this.fail("expected ',' or ']'");
      }
      this.skipWhitespace();
    }
  }

  private parseNumber(): JsonNumber {
    const s = this.s;
    const start = this.pos;
    let i = start;
    let integer = true;
    if (s.charCodeAt(i) === MINUS) i++;
    const first = s.charCodeAt(i);
    if (first === ZERO) i++;
    else if (first > ZERO && first <= NINE) i = digitsEnd(s, i);
    else {
      this.pos = i;
      this.fail('expected a digit');
    }
    if (s.charCodeAt(i) === DOT) {
      integer = false;
      const j = digitsEnd(s, i + 1);
      if (j === i + 1) {
        this.pos = j;
        this.fail('expected a digit after the decimal point');
      }
      i = j;
    }
    const e = s.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      integer = false;
      i++;
      const sign = s.charCodeAt(i);
      if (sign === PLUS || sign === MINUS) i++;
      const j = digitsEnd(s, i);
      if (j === i) {
        this.pos = j;
        this.fail('expected a digit in the exponent');
      }
      i = j;
    }
    this.pos = i;
    return new JsonNumber(Number(s.slice(start, i)), integer);
  }

  parseString(): string {
    const s = this.s;
    let i = this.pos + 1; // after the opening quote
    let chunkStart = i;
    let out = '';
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === QUOTE) {
        out += s.slice(chunkStart, i);
        this.pos = i + 1;
        return out;
      }
      if (Number.isNaN(c)) {
        this.pos = i;
        this.fail('unterminated string');
      }
      if (c < 0x20) {
        this.pos = i;
        this.fail('raw control character in a string');
      }
      if (c !== BACKSLASH) {
        i++;
        continue;
      }
      out += s.slice(chunkStart, i);
      const esc = s.charCodeAt(i + 1);
      i += 2;
      switch (esc) {
        case QUOTE:
          out += '"';
          break;
        case BACKSLASH:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75: {
          const unit = this.hex4(i);
          i += 4;
          // RFC 8259 §8.2: a lone surrogate is not a character; serde_json refuses it too.
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (s.charCodeAt(i) !== BACKSLASH || s.charCodeAt(i + 1) !== 0x75) {
              this.pos = i;
              this.fail('lone surrogate in \\u escape');
            }
            const low = this.hex4(i + 2);
            if (low < 0xdc00 || low > 0xdfff) {
              this.pos = i;
              this.fail('lone surrogate in \\u escape');
            }
            i += 6;
            out += String.fromCharCode(unit, low);
          } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            this.pos = i - 6;
            this.fail('lone surrogate in \\u escape');
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          this.pos = i - 1;
          this.fail('invalid escape in a string');
      }
      chunkStart = i;
    }
  }

  private hex4(at: number): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(at + k);
      let d: number;
      if (c >= ZERO && c <= NINE) d = c - ZERO;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      else {
        this.pos = at + k;
        return this.fail('expected 4 hex digits in \\u escape');
      }
      v = v * 16 + d;
    }
    return v;
  }
}

function digitsEnd(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c >= ZERO && c <= NINE) i++;
    else return i;
  }
}

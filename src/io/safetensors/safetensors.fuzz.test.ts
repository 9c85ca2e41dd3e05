import { describe, expect, it } from 'vitest';
import { isQuantkitError } from '../../errors.js';
import { makeTensor } from '../../tensor/tensor.js';
import type { ByteSource } from '../source.js';
import { readSafetensorsHeader, readSafetensorsTensor } from './read.js';
import { encodeSafetensors } from './write.js';

/*
 * Seeded mutation fuzzing of the reader: every outcome must be a clean read or a QuantkitError,
 * no read may go outside the file (so nothing is allocated beyond the file's size), and no case
 * may take long. QK_FUZZ_ITERATIONS sets the count (npm run fuzz uses 200 000), QK_FUZZ_SEED the seed.
 */
const ITERATIONS = Number(process.env.QK_FUZZ_ITERATIONS ?? 2000);
const SEED = Number(process.env.QK_FUZZ_SEED ?? 0x5afe7e45);
const SLOW_CASE_MS = 2000; // a hang detector, not a timing test: generous for a loaded CI machine

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function corpus(): Uint8Array[] {
  const f32 = makeTensor('float32', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6]), 'layer.0.weight');
  const bf = makeTensor('bfloat16', [4], new Uint16Array([0x3f80, 0, 0xc000, 0x7f80]), 'bias');
  const b = makeTensor('bool', [3], new Uint8Array([1, 0, 1]), 'mask');
  const i64 = makeTensor('int64', [], new BigInt64Array([42n]), 'step');
  const f4 = makeTensor('float4e2m1', [2, 2], new Uint8Array([1, 2, 3, 15]), 'q');
  const empty = makeTensor('uint8', [0], undefined, 'nothing');
  return [
    encodeSafetensors([f32, bf, b, i64, f4, empty], { format: 'pt', note: 'fuzz' }),
    encodeSafetensors([b]),
    encodeSafetensors([]),
    encodeSafetensors([f32, i64]),
  ];
}

/** Rewrites the header text and fixes up the length field, so JSON-level edits reach the validator. */
function withHeader(file: Uint8Array, edit: (json: string) => string, keepLength: boolean): Uint8Array {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const json = enc.encode(edit(dec.decode(file.subarray(8, 8 + n))));
  const out = new Uint8Array(8 + json.length + file.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(keepLength ? n : json.length), true);
  out.set(json, 8);
  out.set(file.subarray(8 + n), 8 + json.length);
  return out;
}

function mutate(base: Uint8Array, r: () => number): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const int = (n: number) => Math.floor(r() * n);
  const interesting = [
    '0',
    '1',
    '-1',
    '7',
    '8',
    '1e3',
    '2.5',
    '9007199254740993',
    '18446744073709551615',
    '4294967296',
    'null',
    '"x"',
    '[]',
    '{}',
  ];
  switch (int(9)) {
    case 0: {
      // flip bytes anywhere
      const out = base.slice();
      for (let k = 1 + int(4); k > 0 && out.length > 0; k--) {
        const at = int(out.length);
        out[at] = (out[at] as number) ^ (1 << int(8));
      }
      return out;
    }
    case 1: {
      // flip bytes in the length field or just after it
      const out = base.slice();
      out[int(Math.min(out.length, 24))] = int(256);
      return out;
    }
    case 2:
      return base.subarray(0, int(base.length)); // truncate
    case 3: {
      // append junk
      const out = new Uint8Array(base.length + 1 + int(16));
      out.set(base);
      for (let i = base.length; i < out.length; i++) out[i] = int(256);
      return out;
    }
    case 4: {
      // header length edits, including absurd u64 values
      const out = base.slice();
      const v = pick([0n, 1n, 7n, 100_000_000n, 100_000_001n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(int(512))]);
      new DataView(out.buffer).setBigUint64(0, v, true);
      return out;
    }
    case 5: // rewrite one number in the header (offsets, shapes)
      return withHeader(
        base,
        (j) => {
          const nums = [...j.matchAll(/\d+/g)];
          const m = nums.length ? pick(nums) : undefined;
          return m === undefined ? j : j.slice(0, m.index) + pick(interesting) + j.slice(m.index + m[0].length);
        },
        false,
      );
    case 6: // rewrite one token (dtype names, keys, punctuation)
      return withHeader(
        base,
        (j) => {
          const at = int(j.length);
          return (
            j.slice(0, at) +
            pick([
              '"',
              ',',
              '{',
              '}',
              '[',
              ']',
              ':',
              '\\',
              '"BOOL"',
              '"F4"',
              '"I8"',
              '"__metadata__"',
              '"dtype"',
              '\u0000',
              'é',
            ]) +
            j.slice(at + int(3))
          );
        },
        r() < 0.2,
      );
    case 7: // duplicate a tensor entry under the same or a new name
      return withHeader(
        base,
        (j) => {
          const m = /"([^"]+)":\{"dtype"[^}]*\}/.exec(j);
          if (!m) return j;
          return j.replace(m[0], `${m[0]},${r() < 0.5 ? m[0] : m[0].replace(`"${m[1]}"`, '"other"')}`);
        },
        false,
      );
    default: {
      // swap two data bytes regions by resizing the buffer part
      const out = base.slice();
      for (let k = 0; k < 8; k++) out[Math.max(0, out.length - 1 - int(32))] = int(256);
      return out;
    }
  }
}

/** A ByteSource that fails the test (with a plain Error) if asked to read outside the file. */
function guarded(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    label: 'fuzz.safetensors',
    read(offset, length) {
      if (
        !Number.isSafeInteger(offset) ||
        !Number.isSafeInteger(length) ||
        offset < 0 ||
        length < 0 ||
        offset + length > bytes.length
      ) {
        throw new Error(`read(${offset}, ${length}) outside the ${bytes.length}-byte file`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

describe('safetensors reader fuzz', () => {
  it(`${ITERATIONS} seeded mutations: only QuantkitErrors, no out-of-file reads, each case under ${SLOW_CASE_MS} ms`, () => {
    const r = rng(SEED);
    const bases = corpus();
    const codes = new Map<string, number>();
    let ok = 0;
    let slowest = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const bytes = mutate(bases[i % bases.length] as Uint8Array, r);
      const src = guarded(bytes);
      const t0 = performance.now();
      try {
        const h = readSafetensorsHeader(src);
        for (const e of h.tensors) readSafetensorsTensor(src, e);
        ok++;
      } catch (e) {
        if (!isQuantkitError(e)) {
          throw new Error(
            `case ${i} (seed ${SEED}) threw a non-QuantkitError: ${String(e)}; bytes: ${Buffer.from(bytes).toString('base64')}`,
          );
        }
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
      slowest = Math.max(slowest, performance.now() - t0);
    }
    if (process.env.QK_FUZZ_VERBOSE) console.log({ ok, slowest, codes });
    expect(slowest).toBeLessThan(SLOW_CASE_MS);
    // The fuzzer must reach deep into validation, not just trip over the length field.
    expect(ok).toBeGreaterThan(0);
    expect(codes.size).toBeGreaterThanOrEqual(Math.min(10, Math.floor(ITERATIONS / 100)));
  });
});

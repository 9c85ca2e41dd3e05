import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quantizeNBitsMatrix, type NBitsOptions, type NBitsWeights } from '../quant/nbits-quant.js';
import { NonFiniteWeight } from '../quant/non-finite-weight.js';
import { quantizeNBitsMatrixAuto } from './nbits-dispatch.js';
import { nbitsWasmAvailable, quantizeSymBlocksWasm } from './nbits-wasm.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => u() + u() + u() + u() - 2);
}

/** The WebAssembly result, failing the test if the kernel declined. */
function wasm(w: Float32Array, K: number, N: number, o: NBitsOptions) {
  const r = quantizeSymBlocksWasm(w, K, N, o.bits as 4 | 8, o.blockSize);
  if (!r || !('packed' in r)) throw new Error(`wasm kernel declined: ${JSON.stringify(r)}`);
  return r;
}

function expectSame(w: Float32Array, K: number, N: number, o: NBitsOptions): void {
  const js: NBitsWeights = quantizeNBitsMatrix(w, K, N, false, 1, o);
  const got = wasm(w, K, N, o);
  expect(got.scales).toEqual(js.scales);
  expect(got.packed).toEqual(js.packed);
  expect(got.signalSq).toBe(js.signalSq);
  expect(got.noiseSq).toBe(js.noiseSq);
  // The dispatching entry point returns the WebAssembly result with the JS kernel's zero points.
  const auto = quantizeNBitsMatrixAuto(w, K, N, false, 1, o);
  expect(auto.zp).toEqual(js.zp);
  expect(auto.zeroPoints).toBeUndefined();
}

describe('WebAssembly SIMD symmetric block kernel = JS kernel, byte for byte', () => {
  it('is available on this Node (SIMD is on by default since Node 16)', () => {
    expect(nbitsWasmAvailable()).toBe(true);
  });

  for (const bits of [4, 8] as const) {
    for (const blockSize of [16, 32, 64, 128, 256]) {
      it(`${bits}-bit block ${blockSize}: random weights, K not a multiple of the block, N not a multiple of 4`, () => {
        const K = blockSize * 2 + 7;
        const N = 13;
        expectSame(randn(K * N, blockSize * 31 + bits), K, N, { bits, blockSize, symmetric: true });
      });
    }

    it(`${bits}-bit: odd K (a lone last code in the low nibble), one row, one column`, () => {
      for (const [K, N] of [
        [33, 4],
        [1, 5],
        [31, 1],
        [32, 3],
      ] as const)
        expectSame(randn(K * N, K + N), K, N, { bits, blockSize: 32, symmetric: true });
    });

    it(`${bits}-bit: zero blocks, subnormals, ties, ±m, huge and tiny magnitudes`, () => {
      const K = 64;
      const N = 12;
      const w = new Float32Array(K * N);
      const mid = 1 << (bits - 1);
      for (let k = 0; k < K; k++) {
        const put = (n: number, v: number) => {
          w[k * N + n] = v;
        };
        put(0, 0); // all zeros (block 0 and 1 of column 0)
        put(1, k % 2 ? -0 : 0); // signed zeros
        put(2, (k % 7) * 1e-45); // subnormals only
        put(3, ((k % 5) - 2) * 2 ** -140 + (k === 9 ? 2 ** -126 : 0)); // subnormals and one normal
        put(4, (k % (2 * mid + 1)) - mid + 0.5); // every value a tie at scale 1
        put(5, k === 3 ? 2 : k === 10 ? -2 : (k % 3) * 0.25); // ±m: the first one wins
        put(6, k === 3 ? -2 : k === 10 ? 2 : (k % 3) * 0.25);
        put(7, (((k * 37) % 17) - 8) * 1e37); // huge
        put(8, (((k * 37) % 17) - 8) * 1e-37); // tiny normals
        put(9, k < 32 ? 1 : -1); // constant blocks
        put(10, k === 0 ? 3.4e38 : 1e-30); // one huge value among tiny ones
        put(11, Math.fround((((k * 13) % 16) - 8) / 7)); // exact grid-ish
      }
      expectSame(w, K, N, { bits, blockSize: 32, symmetric: true });
      expectSame(w, K, N, { bits, blockSize: 16, symmetric: true });
    });
  }

  it('any block of values (property, q4 and q8-block, blocks 16 and 32)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4 as const, 8 as const),
        fc.constantFrom(16, 32),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 9 }),
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 630, maxLength: 630 }),
        (bits, blockSize, K, N, vals) => {
          const w = Float32Array.from(vals.slice(0, K * N));
          expectSame(w, K, N, { bits, blockSize, symmetric: true });
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a NaN or ±Inf is handed back by position, and the entry point raises the JS kernel's named error", () => {
    const K = 40;
    const N = 6;
    for (const bad of [NaN, Infinity, -Infinity]) {
      const w = randn(K * N, 3);
      w[35 * N + 4] = bad; // output 4, input 35: block 1
      expect(quantizeSymBlocksWasm(w, K, N, 4, 32)).toEqual({ nonFinite: [4, 1] });
      expect(() => quantizeNBitsMatrixAuto(w, K, N, false, 1, { bits: 4, blockSize: 32, symmetric: true })).toThrow(
        NonFiniteWeight,
      );
    }
  });

  it('the committed nbits-wasm.generated.ts is what scripts/build-wasm.mjs builds from nbits.wat', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/build-wasm.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

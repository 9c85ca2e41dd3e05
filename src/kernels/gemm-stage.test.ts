import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../quant/prng.js';
import { STAGE_B_ABOVE } from './compute-wasm.js';
import { gemmInt8Ref } from './gemm-int8.ref.js';
import { gemmInt8, gemmInt8Prepacked, packGemmInt8B } from './index.js';

function bytes(count: number, seed: number): Uint8Array {
  const u = mulberry32(seed);
  return Uint8Array.from({ length: count }, () => Math.floor(u() * 256));
}

describe('int8 GEMM, one row against a B big enough to be staged panel by panel', () => {
  // [K, N]: K off 16 with one 4-column panel per staged group; K small with 4 panels a group and
  // a last, partial group (N4 / 4 = 2083 panels). Both B above the size that turns staging on.
  const shapes: [number, number][] = [
    [2900, 2900],
    [1000, 8331],
  ];
  it('B is above the staging size in both shapes (else this tests the other path)', () => {
    for (const [k, n] of shapes) expect(Math.ceil(k / 16) * 16 * Math.ceil(n / 4) * 4).toBeGreaterThan(STAGE_B_ABOVE);
  });
  for (const [k, n] of shapes)
    it(`K = ${k}, N = ${n}: equal to the reference, u8 and s8 A, zero points per tensor and per column`, () => {
      const b = new Int8Array(bytes(k * n, k).buffer);
      const aU8 = bytes(k, k + 1);
      const aS8 = new Int8Array(bytes(k, k + 2).buffer);
      const perColumn = Array.from(bytes(n, k + 3), (v) => v - 128);
      expect(gemmInt8Prepacked(aU8, 255, packGemmInt8B(b, -128, k, n), 1)).toEqual(
        gemmInt8Ref({ a: aU8, b, m: 1, k, n, aZero: 255, bZero: -128 }),
      );
      expect(gemmInt8(aS8, 0, b, perColumn, 1, k, n)).toEqual(
        gemmInt8Ref({ a: aS8, b, m: 1, k, n, aZero: 0, bZero: perColumn }),
      );
    });
});

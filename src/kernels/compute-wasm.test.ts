import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeLinearModel } from '../flows/bench-graphs.js';
import { dequantizeAffine, quantizeAffine } from '../quant/affine.js';
import { FP4_BNB_TABLE, NF4_TABLE } from '../quant/codebook.js';
import { makeLayout } from '../quant/layout.js';
import { mulberry32 } from '../quant/prng.js';
import { computeWasmAvailable } from './compute-wasm.js';
import { gemmInt8Ref, type Int8Codes } from './gemm-int8.ref.js';
import { gemvBnb4Ref, gemvNBitsRef } from './gemv-4bit.ref.js';
import { bnb4Weights, nbitsWeights } from './gemv-4bit.test.js';
import {
  dequantizeLinearInt8,
  gemmInt8,
  gemmInt8Prepacked,
  gemvBnb4,
  gemvNBits,
  packGemmInt8B,
  quantizeLinearInt8,
  setKernelPath,
  type KernelPath,
} from './index.js';

type Kind = 'u8' | 's8';

function codes(kind: Kind, count: number, seed: number): Int8Codes {
  const u = mulberry32(seed);
  const out = kind === 'u8' ? new Uint8Array(count) : new Int8Array(count);
  const lo = kind === 'u8' ? 0 : -128;
  for (let i = 0; i < count; i++) out[i] = lo + Math.floor(u() * 256);
  return out;
}

function floats(count: number, seed: number, lo: number, hi: number): Float32Array {
  const u = mulberry32(seed);
  return Float32Array.from({ length: count }, () => lo + (hi - lo) * u());
}

/** Bit patterns, so −0 ≠ +0 and NaNs compare by payload. */
function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

afterAll(() => setKernelPath('auto'));

it('WebAssembly SIMD is available in this Node, so the fast path is what the tests below run', () => {
  expect(computeWasmAvailable()).toBe(true);
});

for (const path of ['auto', 'js'] as KernelPath[]) {
  describe(`kernels on the ${path === 'auto' ? 'WebAssembly SIMD' : 'JavaScript'} path equal their references bit for bit`, () => {
    const use = () => setKernelPath(path);

    // [M, K, N]: K off 16 and off 256, M = 1, odd M, N odd and off the 4/8-column panel.
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 64, 8],
      [1, 300, 17],
      [2, 16, 4],
      [3, 33, 5],
      [7, 257, 9],
      [16, 100, 24],
      [5, 1000, 3],
      // The WebAssembly kernel's column blocks (256) and K blocks (512) together.
      [6, 600, 300],
      [0, 4, 3],
      [2, 0, 3],
    ];
    const kinds: [Kind, Kind][] = [
      ['u8', 's8'],
      ['s8', 's8'],
      ['u8', 'u8'],
      ['s8', 'u8'],
    ];
    for (const [aKind, bKind] of kinds)
      it(`int8 GEMM ${aKind}×${bKind}: random codes, zero points at both ends of the range, per tensor and per column`, () => {
        use();
        let seed = 1;
        for (const [m, k, n] of shapes) {
          const a = codes(aKind, m * k, seed++);
          const b = codes(bKind, k * n, seed++);
          const lo = (kind: Kind) => (kind === 'u8' ? 0 : -128);
          const hi = (kind: Kind) => (kind === 'u8' ? 255 : 127);
          const zeros: [number, number | number[]][] = [
            [0, 0],
            [hi(aKind), hi(bKind)],
            [lo(aKind), lo(bKind)],
            [aKind === 'u8' ? 128 : 3, Array.from(codes(bKind, n, seed++))],
          ];
          for (const [aZero, bZero] of zeros) {
            const want = gemmInt8Ref({ a, b, m, k, n, aZero, bZero });
            expect(gemmInt8(a, aZero, b, bZero, m, k, n)).toEqual(want);
            expect(gemmInt8Prepacked(a, aZero, packGemmInt8B(b, bZero, k, n), m)).toEqual(want);
          }
        }
      });

    it('int8 GEMM: extreme codes (all −128 / all 255) with far zero points wrap as int32 like the reference', () => {
      use();
      const [m, k, n] = [3, 4100, 5];
      const a = new Uint8Array(m * k).fill(255);
      const b = new Int8Array(k * n).fill(-128);
      const want = gemmInt8Ref({ a, b, m, k, n, aZero: 0, bZero: 127 });
      expect(gemmInt8(a, 0, b, 127, m, k, n)).toEqual(want);
    });

    it('4-bit GEMV: blocks 16…256, K off the block, M = 1 and small M, with and without zero points', () => {
      use();
      for (const [m, k, n, bs] of [
        [1, 64, 8, 32],
        [1, 70, 5, 16],
        [3, 200, 7, 64],
        [2, 256, 9, 128],
        [1, 1000, 3, 256],
        [4, 33, 1, 32],
      ] as const)
        for (const zp of [false, true]) {
          const w = nbitsWeights(k, n, bs, zp, k * n + bs);
          const x = floats(m * k, k + m, -2, 2);
          expect(bits(gemvNBits(x, m, w))).toEqual(bits(gemvNBitsRef(x, m, w)));
        }
    });

    it('NF4/FP4 GEMV: whole-block rows, blocks crossing rows and odd K', () => {
      use();
      for (const [m, k, n, bs] of [
        [1, 128, 8, 64],
        [2, 256, 5, 32],
        [1, 96, 5, 64],
        [2, 65, 3, 32],
        [3, 512, 6, 256],
      ] as const)
        for (const table of [NF4_TABLE, FP4_BNB_TABLE]) {
          const w = bnb4Weights(k, n, bs, table, k * n);
          const x = floats(m * k, k + n, -2, 2);
          expect(bits(gemvBnb4(x, m, w))).toEqual(bits(gemvBnb4Ref(x, m, w)));
        }
    });

    // [outer, C, inner]: per tensor, per column (inner 1, C off 16), per row runs.
    const qShapes: [number, number, number][] = [
      [1, 1, 1000],
      [1, 1, 7],
      [37, 21, 1],
      [5, 40, 1],
      [3, 6, 35],
      [1, 4, 4096],
    ];
    for (const signed of [true, false])
      it(`quantize/dequantize ${signed ? 'int8' : 'uint8'}: per tensor and per channel, ties, saturation, zero points 0 and 255`, () => {
        use();
        let seed = 50;
        for (const [outer, c, inner] of qShapes) {
          const count = outer * c * inner;
          const scale = floats(c, seed++, 0.001, 0.05);
          const x = floats(count, seed++, -8, 8);
          // Exact ties k + 0.5 (x = (k + 0.5)·s is exact for s a power of 2) in the first channel.
          scale[0] = 2 ** -6;
          for (let i = 0; i < Math.min(40, count); i += 2) x[i] = (Math.floor(i / 2) - 10 + 0.5) * 2 ** -6;
          for (const zpKind of ['low', 'high', 'random'] as const) {
            const zeroPoint = Int32Array.from({ length: c }, (_, j) =>
              zpKind === 'low'
                ? signed
                  ? -128
                  : 0
                : zpKind === 'high'
                  ? signed
                    ? 127
                    : 255
                  : (signed ? -20 : 128) + j,
            );
            const p = { scale, zeroPoint, signed, inner };
            const layout = makeLayout([outer, c, inner], [outer, 1, inner]);
            const params = { scale, zeroPoint, qmin: signed ? -128 : 0, qmax: signed ? 127 : 255 };
            const want = quantizeAffine(x, layout, params, signed ? new Int8Array(count) : new Uint8Array(count));
            const got = quantizeLinearInt8(x, p);
            expect(got).toEqual(want);
            expect(bits(dequantizeLinearInt8(got, p))).toEqual(bits(dequantizeAffine(want, layout, params)));
          }
        }
      });

    it('quantize: NaN and ±Inf are named (default) or clamped as the reference does', () => {
      use();
      const x = floats(100, 3, -1, 1);
      x[70] = NaN;
      const p = { scale: Float32Array.of(0.01), signed: true, inner: 100 };
      expect(() => quantizeLinearInt8(x, p)).toThrow(/70/);
      x[70] = -Infinity;
      x[20] = NaN;
      const got = quantizeLinearInt8(x, { ...p, nonFinite: 'clamp' });
      expect([got[70], got[20]]).toEqual([-128, 0]);
    });
  });
}

describe('quantize against ONNX Runtime QuantizeLinear, bit for bit', () => {
  for (const [name, dims] of [
    ['per tensor', [1, 1, 5000]],
    ['per channel, axis 1 of [K, N]', [300, 37, 1]],
    ['per channel, axis 0 of [N, K]', [1, 33, 300]],
  ] as const)
    for (const signed of [true, false])
      it(`${name}, ${signed ? 'int8' : 'uint8'}`, async () => {
        setKernelPath('auto');
        const [outer, c, inner] = dims;
        const count = outer * c * inner;
        const scale = floats(c, 11, 0.0005, 0.02);
        // Wide values (saturating both ends) and quotients near ties.
        const x = floats(count, 12, -3, 3);
        for (let i = 0; i < count; i += 3)
          x[i] = Math.fround(((i % 401) - 200 + 0.5) * (scale[Math.floor(i / inner) % c] as number));
        const zp = signed
          ? Int8Array.from({ length: c }, (_, j) => ((j * 37) % 256) - 128)
          : Uint8Array.from({ length: c }, (_, j) => (j * 37) % 256);
        const session = await ort.InferenceSession.create(quantizeLinearModel([outer, c, inner], scale, zp));
        const out = await session.run({ x: new ort.Tensor('float32', x, [outer, c, inner]) });
        await session.release();
        const got = quantizeLinearInt8(x, { scale, zeroPoint: zp, signed, inner });
        expect(got).toEqual(out['y']!.data);
      });
});

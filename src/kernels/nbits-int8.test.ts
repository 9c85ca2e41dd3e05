import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { runModel } from '../interp/run.js';
import { makeModel } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import { mulberry32 } from '../quant/prng.js';
import { makeTensor } from '../tensor/tensor.js';
import { qemuAvailable, runOrtAvx2 } from '../../test/helpers/ort-avx2.js';
import { matmulNBitsInt8 } from './index.js';
import { matmulNBitsInt8Ref, quantizeRowsInt8Blocks, takesInt8Path, type NBitsInt8Weights } from './nbits-int8.ref.js';

/**
 * MatMulNBits accuracy_level 4 held to ONNX Runtime's own operator.
 *
 * The tolerance, derived: ORT forms Y = Σ_blocks (sA·sB·Σ q·code − sA·Σq · sB·zp) in float32, in
 * an order its SIMD kernels pick per CPU. The integer sums are exact (|Σ q·code| ≤ 256·127·255 <
 * 2^24, so their float conversion is exact too); each of the 2·kBlocks terms takes at most three
 * roundings (sA·sB or sA·Σq and sB·zp, then the product) and their sum 2·kBlocks − 1 more, so
 * |ORT − exact| ≤ γ(2·kBlocks + 3) · T with T = Σ_blocks (|sA·sB·Σ q·code| + |sA·Σq · sB·zp|)
 * and γ(n) = n·u / (1 − n·u), u = 2^−24 (Higham's bound for recursive summation; any order,
 * with or without FMA). The reference sums in float64 and rounds once: ≤ u·|Y| more. The codes q
 * must match ORT's exactly for this to hold: one code off moves Y by sA·sB·|code − zp|, far more
 * than γ·T for these shapes, so the bound also checks the quantization of A.
 */
const U = 2 ** -24;
const gamma = (n: number) => (n * U) / (1 - n * U);

function codeAt(bytes: Uint8Array, base: number, j: number, bits: number): number {
  const bit = j * bits;
  return ((bytes[base + (bit >> 3)] as number) >> (bit & 7)) & ((1 << bits) - 1);
}

/** Per output, the bound above on |ORT − reference|. */
function tolerance(x: Float32Array, m: number, w: NBitsInt8Weights, y: Float32Array): Float64Array {
  const { K, N, bits, blockSize: bs } = w;
  const kBlocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const a = quantizeRowsInt8Blocks(x, m, K, bs);
  const t = new Float64Array(m * N);
  for (let row = 0; row < m; row++)
    for (let n = 0; n < N; n++) {
      let T = 0;
      for (let blk = 0; blk < kBlocks; blk++) {
        const p = n * kBlocks + blk;
        const z = w.zeroPoints ? codeAt(w.zeroPoints, n * zpRow, blk, bits) : 1 << (bits - 1);
        let dot = 0;
        for (let j = 0; j < Math.min(bs, K - blk * bs); j++)
          dot += (a.codes[row * K + blk * bs + j] as number) * codeAt(w.packed, p * blob, j, bits);
        const sA = a.scales[row * kBlocks + blk] as number;
        const sB = w.scales[p] as number;
        T += Math.abs(sA * sB * dot) + Math.abs(sA * (a.sums[row * kBlocks + blk] as number) * sB * z);
      }
      t[row * N + n] = gamma(2 * kBlocks + 3) * T + U * Math.abs(y[row * N + n] as number);
    }
  return t;
}

function nbitsModel(w: NBitsInt8Weights, level: number, bias?: Float32Array) {
  const { K, N, bits, blockSize: bs } = w;
  const kBlocks = Math.ceil(K / bs);
  return makeModel({
    nodes: [
      {
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        inputs: bias
          ? ['a', 'b', 's', w.zeroPoints ? 'z' : '', '', 'bias']
          : ['a', 'b', 's', ...(w.zeroPoints ? ['z'] : [])],
        outputs: ['y'],
        attributes: { K, N, bits, block_size: bs, accuracy_level: level },
      },
    ],
    inputs: [{ name: 'a', dtype: 'float32', dims: ['M', K] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: ['M', N] }],
    // Initializers, as our quantizer writes them: ORT prepacks constant weights, and only a
    // prepacked weight takes its int8 path.
    initializers: {
      b: makeTensor('uint8', [N, kBlocks, (bs * bits) / 8], w.packed),
      s: makeTensor('float32', [N * kBlocks], w.scales),
      ...(w.zeroPoints ? { z: makeTensor('uint8', [w.zeroPoints.length], w.zeroPoints) } : {}),
      ...(bias ? { bias: makeTensor('float32', [N], bias) } : {}),
    },
    opsets: { '': 17, 'com.microsoft': 1 },
  });
}

async function ortRun(w: NBitsInt8Weights, level: number, x: Float32Array, m: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(encodeModel(nbitsModel(w, level)));
  const out = await session.run({ a: new ort.Tensor('float32', x, [m, w.K]) });
  return out.y!.data as Float32Array;
}

function randomWeights(
  K: number,
  N: number,
  bits: 2 | 4 | 8,
  blockSize: number,
  zeroPoints: boolean,
  seed: number,
): NBitsInt8Weights {
  const r = mulberry32(seed);
  const kBlocks = Math.ceil(K / blockSize);
  const byte = () => Math.floor(r() * 256);
  return {
    K,
    N,
    bits,
    blockSize,
    packed: Uint8Array.from({ length: (N * kBlocks * blockSize * bits) / 8 }, byte),
    scales: Float32Array.from({ length: N * kBlocks }, () => 0.01 + 0.1 * r()),
    zeroPoints: zeroPoints ? Uint8Array.from({ length: N * Math.ceil((kBlocks * bits) / 8) }, byte) : undefined,
  };
}

/** A [m, K] in ±2, with row 0's second block all zeros (its scale 0, its codes 0). */
function randomA(m: number, K: number, blockSize: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const x = Float32Array.from({ length: m * K }, () => 4 * r() - 2);
  x.fill(0, blockSize, Math.min(K, 2 * blockSize));
  return x;
}

function expectWithin(got: Float32Array, want: Float32Array, tol: Float64Array) {
  let worst = 0;
  for (let i = 0; i < got.length; i++)
    worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)) / (tol[i] as number));
  // worst = the largest |Δ| as a fraction of its bound
  expect(worst).toBeLessThanOrEqual(1);
}

describe('MatMulNBits accuracy_level 4 reference', () => {
  it('quantizes A per block as MLAS does: scale amax/127, 127/amax, ties to even, zero block → 0', () => {
    // Block of 4: amax 127 → scale 1, codes = round-half-even(a): 2.5 → 2, −2.5 → −2, 3.5 → 4.
    // Block 2 all zeros: scale 0, codes 0. Block 3 is the short tail (K = 10).
    const x = Float32Array.from([127, 2.5, -2.5, 3.5, 0, 0, 0, 0, -0.5, 0.25]);
    const q = quantizeRowsInt8Blocks(x, 1, 10, 4);
    expect([...q.codes]).toEqual([127, 2, -2, 4, 0, 0, 0, 0, -127, 64]);
    // 0.25 · (127 / 0.5) = 63.5 → 64 (even); −0.5 · 254 = −127.
    expect([...q.scales]).toEqual([1, 0, Math.fround(0.5 / 127)]);
    expect([...q.sums]).toEqual([131, 0, -63]);
  });

  it('ORT rounds A to even at ties: A = [127, 2.5, 0…] picks code 2, not 3', async () => {
    // One column whose only non-zero weight (code − zp = 1, scale 1) meets A[1]: Y = sA · q[1].
    const K = 16;
    const packed = new Uint8Array(8).fill(0x88);
    packed[0] = 0x98; // element 1 (high nibble) = 9, zero point 8
    const w: NBitsInt8Weights = { K, N: 1, bits: 4, blockSize: 16, packed, scales: Float32Array.of(1) };
    const x = new Float32Array(K);
    x[0] = 127;
    x[1] = 2.5;
    expect([...(await ortRun(w, 4, x, 1))]).toEqual([2]);
    expect([...matmulNBitsInt8Ref(x, 1, w)]).toEqual([2]);
    expect([...(await ortRun(w, 0, x, 1))]).toEqual([2.5]); // level 0: the float product

    // The reciprocal is fp32(127 / amax), not fp32(1 / scale): find an amax where the two differ
    // and an a that lands on a tie under the first but not under the second.
    const f = Math.fround;
    let probe: { amax: number; a: number; q: number } | undefined;
    for (let i = 1; !probe && i < 10_000; i++) {
      const amax = f(1 + i / 1000);
      const inverse = f(127 / amax);
      if (inverse === f(1 / f(amax / 127))) continue;
      for (let k = 1; k < 100 && !probe; k++) {
        const a = f((k + 0.5) / inverse);
        if (f(a * inverse) === k + 0.5 && f(a * f(1 / f(amax / 127))) !== k + 0.5)
          probe = { amax, a, q: k % 2 ? k + 1 : k };
      }
    }
    expect(probe).toBeDefined();
    x[0] = probe!.amax;
    x[1] = probe!.a;
    const sA = f(probe!.amax / 127);
    const ref = matmulNBitsInt8Ref(x, 1, w);
    expect([...ref]).toEqual([f(sA * probe!.q)]);
    // ORT's zero-point split (sA·Σ q·code − sA·Σq·8) cancels: within the bound, which is < sA / 2
    // here, so a code one off would show.
    const tol = tolerance(x, 1, w, ref);
    expect(tol[0]).toBeLessThan(sA / 2);
    expectWithin(await ortRun(w, 4, x, 1), ref, tol);
  });

  const cases: [2 | 4 | 8, number, boolean][] = [
    [4, 16, false],
    [4, 32, true],
    [4, 128, false],
    [4, 256, true],
    [8, 32, false],
    [8, 64, true],
    [2, 32, true],
    [2, 128, false],
  ];
  for (const [bits, bs, zp] of cases)
    for (const m of [1, 5])
      it(`bits ${bits}, block ${bs}, ${zp ? 'zero points' : 'no zero points'}, M = ${m}, K = 600 (a short last block): ORT within the derived bound`, async () => {
        const K = 600;
        const w = randomWeights(K, 19, bits, bs, zp, bits * 1000 + bs);
        const x = randomA(m, K, bs, bs + m);
        const ref = matmulNBitsInt8Ref(x, m, w);
        const got = await ortRun(w, 4, x, m);
        expectWithin(got, ref, tolerance(x, m, w, ref));
        // Level 4 is a different number from level 0 here, by far more than the bound.
        const level0 = await ortRun(w, 0, x, m);
        expect(() => expectWithin(level0, ref, tolerance(x, m, w, ref))).toThrow();
      });

  it('the fast path returns the reference bits: bits 2/4/8, K a multiple of the block or not, M = 1…4, weights reused', () => {
    for (const bits of [2, 4, 8] as const)
      for (const [K, bs] of [
        [16, 16],
        [100, 32],
        [256, 64],
        [300, 128],
        [513, 256],
      ] as const)
        for (const zp of [false, true]) {
          const w = randomWeights(K, 9, bits, bs, zp, K + bits);
          for (const m of [1, 4]) {
            const x = randomA(m, K, bs, m + bs);
            const want = matmulNBitsInt8Ref(x, m, w);
            expect(matmulNBitsInt8(x, m, w)).toEqual(want);
            expect(matmulNBitsInt8(x, m, w)).toEqual(want); // from the cached unpacked weight
          }
          // A new zero-point array for the same packed bytes is seen (the cache is not stale).
          if (zp) {
            const moved = { ...w, zeroPoints: w.zeroPoints!.map((b) => b ^ 0x11) };
            const x = randomA(2, K, bs, 1);
            expect(matmulNBitsInt8(x, 2, moved)).toEqual(matmulNBitsInt8Ref(x, 2, moved));
          }
        }
  });

  it('2-bit blocks of 16 and 256 have no int8 path in ORT: level 4 = level 0 there, bit for bit', async () => {
    for (const bs of [16, 256]) {
      expect(takesInt8Path(2, bs)).toBe(false);
      const w = randomWeights(512, 7, 2, bs, true, bs);
      const x = randomA(2, 512, bs, 3);
      expect(await ortRun(w, 4, x, 2)).toEqual(await ortRun(w, 0, x, 2));
    }
    expect([16, 32, 64, 128, 256].every((bs) => takesInt8Path(4, bs) && takesInt8Path(8, bs))).toBe(true);
  });

  it('the interpreter honours accuracy_level: level 4 with bias matches ORT within the bound, level 0 does not', async () => {
    const K = 200;
    const m = 3;
    const w = randomWeights(K, 11, 4, 32, true, 77);
    const bias = Float32Array.from({ length: 11 }, (_, i) => i - 5);
    const x = randomA(m, K, 32, 78);
    const feeds = new Map([['a', makeTensor('float32', [m, K], x)]]);
    const session = await ort.InferenceSession.create(encodeModel(nbitsModel(w, 4, bias)));
    const want = (await session.run({ a: new ort.Tensor('float32', x, [m, K]) })).y!.data as Float32Array;
    const ref = matmulNBitsInt8Ref(x, m, w);
    const tol = tolerance(x, m, w, ref).map((t, i) => t + U * Math.abs(want[i] as number)); // + the bias add
    const level4 = runModel(nbitsModel(w, 4, bias), feeds).get('y')!.data as Float32Array;
    expectWithin(level4, want, tol);
    const level0 = runModel(nbitsModel(w, 0, bias), feeds).get('y')!.data as Float32Array;
    expect(() => expectWithin(level0, want, tol)).toThrow();
  });

  it.skipIf(!qemuAvailable())(
    'on an AVX2-only CPU (ORT under qemu -cpu Haswell) ORT stays within the same bound, 8-bit weights included',
    () => {
      // AVX2 has no VNNI: u8×s8 pairs would saturate int16 if ORT multiplied 8-bit codes that way;
      // A = 1 everywhere (codes 127) and codes 255 with zero point 0 would show it.
      const K = 64;
      const w: NBitsInt8Weights = {
        ...randomWeights(K, 4, 8, 32, true, 5),
        packed: new Uint8Array(4 * K).fill(255),
        zeroPoints: new Uint8Array(4 * 2),
      };
      const cases = [
        { w, x: new Float32Array(2 * K).fill(1), m: 2 },
        { w: randomWeights(200, 5, 4, 32, false, 6), x: randomA(3, 200, 32, 7), m: 3 },
      ];
      for (const c of cases) {
        const out = runOrtAvx2(encodeModel(nbitsModel(c.w, 4)), {
          a: makeTensor('float32', [c.m, c.w.K], c.x),
        });
        const ref = matmulNBitsInt8Ref(c.x, c.m, c.w);
        expectWithin(out.y!.data as Float32Array, ref, tolerance(c.x, c.m, c.w, ref));
      }
    },
    120_000,
  );
});

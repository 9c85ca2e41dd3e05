import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { QuantkitError } from '../errors.js';
import { makeModel } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import { mulberry32 } from '../quant/prng.js';
import { gemmInt8, gemmInt8Packed, packB } from './gemm-int8.js';
import { gemmInt8Ref, type GemmInt8Problem, type Int8Codes } from './gemm-int8.ref.js';

type Kind = 'u8' | 's8';
const RANGE: Record<Kind, [number, number]> = { u8: [0, 255], s8: [-128, 127] };

/** Uniform codes in [lo, hi] (the type's range unless narrowed). */
function codes(kind: Kind, count: number, seed: number, lo = RANGE[kind][0], hi = RANGE[kind][1]): Int8Codes {
  const u = mulberry32(seed);
  const out = kind === 'u8' ? new Uint8Array(count) : new Int8Array(count);
  for (let i = 0; i < count; i++) out[i] = lo + Math.floor(u() * (hi - lo + 1));
  return out;
}

function filled(kind: Kind, count: number, v: number): Int8Codes {
  return (kind === 'u8' ? new Uint8Array(count) : new Int8Array(count)).fill(v);
}

function randomProblem(aKind: Kind, bKind: Kind, m: number, k: number, n: number, seed: number): GemmInt8Problem {
  const zs = codes(bKind, n + 2, seed + 3);
  return {
    a: codes(aKind, m * k, seed),
    b: codes(bKind, k * n, seed + 1),
    m,
    k,
    n,
    aZero: codes(aKind, 1, seed + 2)[0] as number,
    // Per-tensor for even seeds, per-column for odd ones.
    bZero: seed % 2 === 0 ? (zs[n] as number) : Array.from(zs.subarray(0, n)),
  };
}

const KINDS: [Kind, Kind][] = [
  ['u8', 's8'],
  ['s8', 's8'],
  ['u8', 'u8'],
  ['s8', 'u8'],
];

// [M, K, N]: single rows/columns/depth, K across and off the 256 block, N off the 8-column panel,
// M off the 4-row tile.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 64, 8],
  [1, 300, 17],
  [4, 256, 8],
  [5, 1, 9],
  [7, 257, 1],
  [9, 513, 13],
  [16, 100, 24],
  [3, 1000, 5],
  [0, 4, 3],
  [2, 0, 3],
];

describe('fast int8 GEMM equals the reference bit for bit', () => {
  for (const [aKind, bKind] of KINDS)
    for (const [s, [m, k, n]] of SHAPES.entries())
      it(`${aKind}×${bKind} M=${m} K=${k} N=${n}`, () => {
        const p = randomProblem(aKind, bKind, m, k, n, 100 * s + aKind.length + (bKind === 'u8' ? 7 : 0));
        expect(gemmInt8(p)).toEqual(gemmInt8Ref(p));
      });

  // Every product at its largest magnitude (255·255) with zero points at the far ends: the lane
  // sums of a 256-deep block reach their bound.
  const EXTREMES: { name: string; aKind: Kind; bKind: Kind; a: number; za: number; b: number; zb: number }[] = [
    { name: 'u8 255−0 × u8 255−0', aKind: 'u8', bKind: 'u8', a: 255, za: 0, b: 255, zb: 0 },
    { name: 'u8 0−255 × u8 0−255', aKind: 'u8', bKind: 'u8', a: 0, za: 255, b: 0, zb: 255 },
    { name: 'u8 255−0 × u8 0−255', aKind: 'u8', bKind: 'u8', a: 255, za: 0, b: 0, zb: 255 },
    { name: 's8 −128−127 × s8 −128−127', aKind: 's8', bKind: 's8', a: -128, za: 127, b: -128, zb: 127 },
    { name: 's8 127+128 × s8 −128−127', aKind: 's8', bKind: 's8', a: 127, za: -128, b: -128, zb: 127 },
    { name: 'u8 255−0 × s8 −128−0', aKind: 'u8', bKind: 's8', a: 255, za: 0, b: -128, zb: 0 },
  ];
  for (const e of EXTREMES)
    it(`extremes ${e.name}`, () => {
      const [m, k, n] = [5, 600, 11];
      const p: GemmInt8Problem = {
        a: filled(e.aKind, m * k, e.a),
        b: filled(e.bKind, k * n, e.b),
        m,
        k,
        n,
        aZero: e.za,
        bZero: e.zb,
      };
      const ref = gemmInt8Ref(p);
      expect(ref[0]).toBe(k * (e.a - e.za) * (e.b - e.zb));
      expect(gemmInt8(p)).toEqual(ref);
    });

  it('codes and zero points at their extremes, mixed, per-column zero points 0 and 255', () => {
    const [m, k, n] = [6, 700, 10];
    const pick = (kind: Kind, count: number, seed: number) => {
      const u = mulberry32(seed);
      const [lo, hi] = RANGE[kind];
      const out = kind === 'u8' ? new Uint8Array(count) : new Int8Array(count);
      for (let i = 0; i < count; i++) out[i] = u() < 0.5 ? lo : hi;
      return out;
    };
    const p: GemmInt8Problem = {
      a: pick('u8', m * k, 1),
      b: pick('u8', k * n, 2),
      m,
      k,
      n,
      aZero: 255,
      bZero: Array.from({ length: n }, (_, j) => (j % 2 ? 255 : 0)),
    };
    expect(gemmInt8(p)).toEqual(gemmInt8Ref(p));
  });

  it('wraps modulo 2^32 like an int32 accumulator once the sum passes 2^31 (K = 40000)', () => {
    const [m, k, n] = [2, 40000, 3];
    const p: GemmInt8Problem = {
      a: filled('u8', m * k, 255),
      b: filled('u8', k * n, 255),
      m,
      k,
      n,
      aZero: 0,
      bZero: 0,
    };
    const want = Number(BigInt.asIntN(32, BigInt(k) * 255n * 255n));
    expect(want).toBeLessThan(0);
    const ref = gemmInt8Ref(p);
    expect(Array.from(ref)).toEqual(new Array(m * n).fill(want));
    expect(gemmInt8(p)).toEqual(ref);
  });

  it('a packed B is reused across activations and their zero points', () => {
    const [k, n] = [300, 12];
    const b = codes('s8', k * n, 5);
    const bZero = Array.from(codes('s8', n, 6));
    const packed = packB(b, k, n, bZero);
    for (const [m, seed] of [
      [1, 7],
      [6, 8],
    ] as const) {
      const a = codes('u8', m * k, seed);
      const aZero = seed * 20;
      expect(gemmInt8Packed(a, m, aZero, packed)).toEqual(gemmInt8Ref({ a, b, m, k, n, aZero, bZero }));
    }
  });
});

describe('int8 GEMM reference', () => {
  it('a hand-worked 2×2: (A − 1)(B − [5, 6])', () => {
    const p: GemmInt8Problem = {
      a: Uint8Array.of(1, 2, 3, 4),
      b: Uint8Array.of(5, 6, 7, 8),
      m: 2,
      k: 2,
      n: 2,
      aZero: 1,
      bZero: [5, 6],
    };
    // A − 1 = [[0, 1], [2, 3]], B − zb = [[0, 0], [2, 2]].
    expect(Array.from(gemmInt8Ref(p))).toEqual([2, 2, 6, 6]);
    expect(Array.from(gemmInt8(p))).toEqual([2, 2, 6, 6]);
  });

  it('rejects operands of the wrong size and zero points outside the type', () => {
    const ok: GemmInt8Problem = { a: new Uint8Array(6), b: new Int8Array(12), m: 2, k: 3, n: 4, aZero: 0, bZero: 0 };
    const bad: Partial<GemmInt8Problem>[] = [
      { a: new Uint8Array(5) },
      { b: new Int8Array(11) },
      { m: 1.5 },
      { aZero: 256 },
      { bZero: 128 },
      { bZero: [0, 0, 0] },
      { bZero: [0, 0, -129, 0] },
    ];
    for (const change of bad) {
      const p = { ...ok, ...change };
      expect(() => gemmInt8Ref(p)).toThrow(QuantkitError);
      expect(() => gemmInt8(p)).toThrow(QuantkitError);
    }
  });
});

/** ONNX Runtime's MatMulInteger on the same problem (B and zero points as initializers). */
async function ortMatMulInteger(p: GemmInt8Problem): Promise<Int32Array> {
  const aType = p.a instanceof Uint8Array ? 'uint8' : 'int8';
  const bType = p.b instanceof Uint8Array ? 'uint8' : 'int8';
  const zero = (type: 'uint8' | 'int8', v: number | ArrayLike<number>) =>
    typeof v === 'number'
      ? { dtype: type, dims: [], data: (type === 'uint8' ? Uint8Array : Int8Array).of(v) }
      : { dtype: type, dims: [v.length], data: (type === 'uint8' ? Uint8Array : Int8Array).from(Array.from(v)) };
  const model = makeModel({
    nodes: [{ opType: 'MatMulInteger', inputs: ['a', 'b', 'za', 'zb'], outputs: ['y'] }],
    inputs: [{ name: 'a', dtype: aType, dims: [p.m, p.k] }],
    outputs: [{ name: 'y', dtype: 'int32', dims: [p.m, p.n] }],
    initializers: {
      b: { dtype: bType, dims: [p.k, p.n], data: p.b },
      za: zero(aType, p.aZero),
      zb: zero(bType, p.bZero),
    },
  });
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1 });
  const out = await session.run({ a: new ort.Tensor(aType, p.a, [p.m, p.k]) });
  await session.release();
  return out.y?.data as Int32Array;
}

// ORT's AVX2 u8×s8 kernel (machines without VNNI) sums pairs of products into int16 with
// saturation (test/helpers/ort-avx2.ts), so with u8 activations the weights stay within ±64, where
// a pair cannot saturate; s8×s8 takes a kernel without that limit.
describe('int8 GEMM reference equals ONNX Runtime MatMulInteger', () => {
  const cases: { name: string; p: GemmInt8Problem }[] = [
    { name: 's8×s8 M=3 K=17 N=5, per-tensor zero points', p: { ...randomProblem('s8', 's8', 3, 17, 5, 40) } },
    { name: 's8×s8 M=4 K=300 N=9, per-column zero points', p: { ...randomProblem('s8', 's8', 4, 300, 9, 41) } },
    { name: 's8×s8 M=1 K=513 N=16', p: { ...randomProblem('s8', 's8', 1, 513, 16, 42) } },
    {
      name: 'u8×s8 (|w| ≤ 64) M=5 K=130 N=7, per-column zero points',
      p: {
        a: codes('u8', 5 * 130, 43),
        b: codes('s8', 130 * 7, 44, -64, 64),
        m: 5,
        k: 130,
        n: 7,
        aZero: 131,
        bZero: Array.from(codes('s8', 7, 45, -64, 64)),
      },
    },
  ];
  for (const c of cases)
    it(c.name, async () => {
      const want = await ortMatMulInteger(c.p);
      expect(gemmInt8Ref(c.p)).toEqual(want);
    });
});

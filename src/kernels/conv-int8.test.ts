import { afterEach, describe, expect, it } from 'vitest';
import { QuantkitError } from '../errors.js';
import { mulberry32 } from '../quant/prng.js';
import { convInt8, prepareConvInt8Weights } from './conv-int8.js';
import { convInt8Ref, type ConvInt8Problem } from './conv-int8.ref.js';
import { gemmInt8Ref, type Int8Codes } from './gemm-int8.ref.js';
import { setKernelPath } from './index.js';

type Kind = 'u8' | 's8';

function codes(kind: Kind, count: number, seed: number): Int8Codes {
  const u = mulberry32(seed);
  const out = kind === 'u8' ? new Uint8Array(count) : new Int8Array(count);
  for (let i = 0; i < count; i++) out[i] = (kind === 'u8' ? 0 : -128) + Math.floor(u() * 256);
  return out;
}

interface Shape {
  readonly name: string;
  readonly x: number[];
  readonly w: number[];
  readonly group?: number;
  readonly strides?: number[];
  readonly pads?: number[];
  readonly dilations?: number[];
}

// Edge shapes: 1×1 (a plain GEMM), depthwise and grouped, pads on one side and both, stride 2,
// dilation, K = C/group·window off the GEMM's 256 block and its 4-pair step, 1-D and 3-D, batch 2.
const SHAPES: Shape[] = [
  { name: '1×1', x: [1, 8, 5, 5], w: [6, 8, 1, 1] },
  { name: '3×3 pad 1', x: [1, 3, 7, 6], w: [5, 3, 3, 3], pads: [1, 1, 1, 1] },
  { name: 'depthwise 3×3 stride 2', x: [1, 6, 9, 9], w: [6, 1, 3, 3], group: 6, strides: [2, 2], pads: [1, 1, 1, 1] },
  { name: 'groups 2, multiplier 2', x: [2, 4, 6, 5], w: [4, 2, 2, 3], group: 2, pads: [0, 1, 1, 0] },
  { name: 'K = 17·3·3 = 153 (not a block multiple)', x: [1, 17, 6, 6], w: [9, 17, 3, 3], strides: [2, 1] },
  { name: 'K = 29·3·3 = 261, uneven pads', x: [1, 29, 5, 8], w: [3, 29, 3, 3], pads: [2, 0, 0, 2] },
  { name: 'dilation 2', x: [1, 5, 9, 9], w: [4, 5, 3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
  { name: '1-D', x: [1, 4, 11], w: [3, 4, 5], strides: [3], pads: [2, 1] },
  { name: '3-D', x: [1, 2, 4, 4, 3], w: [2, 2, 2, 3, 2], pads: [1, 0, 1, 0, 1, 0] },
  { name: 'kernel wider than input, all padding at the edges', x: [1, 2, 2, 2], w: [2, 2, 5, 5], pads: [2, 2, 2, 2] },
];

function problem(s: Shape, xKind: Kind, wKind: Kind, seed: number, zeros?: [number, number]): ConvInt8Problem {
  const count = (d: number[]) => d.reduce((a, v) => a * v, 1);
  const zs = codes(wKind, (s.w[0] as number) + 1, seed + 7);
  return {
    x: codes(xKind, count(s.x), seed),
    xDims: s.x,
    xZero: zeros ? zeros[0] : (codes(xKind, 1, seed + 5)[0] as number),
    w: codes(wKind, count(s.w), seed + 1),
    wDims: s.w,
    // Per-tensor for even seeds, per-output-channel for odd ones.
    wZero: zeros ? zeros[1] : seed % 2 ? Array.from(zs.subarray(0, s.w[0])) : (zs[s.w[0] as number] as number),
    group: s.group,
    strides: s.strides,
    pads: s.pads,
    dilations: s.dilations,
  };
}

afterEach(() => setKernelPath('auto'));

describe('convInt8Ref', () => {
  it('a 1×1 convolution is the GEMM W·X (gemmInt8Ref, an independent loop)', () => {
    const p = problem({ name: '', x: [1, 7, 3, 4], w: [5, 7, 1, 1] }, 'u8', 's8', 11);
    // y[m, q] = Σ_c (w[m, c] − zw[m])(x[c, q] − zx): A = x transposed [12, 7], B = w transposed [7, 5].
    const a = new Uint8Array(12 * 7);
    const b = new Int8Array(7 * 5);
    for (let c = 0; c < 7; c++) for (let q = 0; q < 12; q++) a[q * 7 + c] = p.x[c * 12 + q] as number;
    for (let m = 0; m < 5; m++) for (let c = 0; c < 7; c++) b[c * 5 + m] = p.w[m * 7 + c] as number;
    const c = gemmInt8Ref({ a, b, m: 12, k: 7, n: 5, aZero: p.xZero, bZero: p.wZero });
    const y = convInt8Ref(p);
    for (let m = 0; m < 5; m++) for (let q = 0; q < 12; q++) expect(y[m * 12 + q]).toBe(c[q * 5 + m]);
  });

  it('matches a hand-worked 3×3 stride-2 padded case', () => {
    // x 1×1×3×3 = 1..9 (zero point 1), w all 1 (zero point 0), pad 1, stride 2: each output sums
    // (x − 1) over the window's inside; corners see a 2×2 block.
    const y = convInt8Ref({
      x: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]),
      xDims: [1, 1, 3, 3],
      xZero: 1,
      w: new Int8Array(9).fill(1),
      wDims: [1, 1, 3, 3],
      wZero: 0,
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    });
    expect(Array.from(y)).toEqual([0 + 1 + 3 + 4, 1 + 2 + 4 + 5, 3 + 4 + 6 + 7, 4 + 5 + 7 + 8]);
  });

  it('rejects a weight that does not fit the group, and an out-of-range zero point', () => {
    const p = problem(SHAPES[0] as Shape, 'u8', 's8', 1);
    expect(() => convInt8Ref({ ...p, group: 3 })).toThrow(QuantkitError);
    expect(() => convInt8Ref({ ...p, wZero: 200 })).toThrow(/zero point 200 of w/);
  });
});

describe('convInt8 (im2col + int8 GEMM) equals convInt8Ref bit for bit', () => {
  for (const path of ['auto', 'js'] as const)
    for (const [xKind, wKind] of [
      ['u8', 's8'],
      ['u8', 'u8'],
      ['s8', 's8'],
    ] as [Kind, Kind][])
      it(`${path} path, ${xKind}×${wKind}: every edge shape, random codes and zero points`, () => {
        setKernelPath(path);
        SHAPES.forEach((s, i) => {
          const p = problem(s, xKind, wKind, 100 + i);
          expect(convInt8(p), s.name).toEqual(convInt8Ref(p));
        });
      });

  it('zero points 0 and 255 (uint8 extremes), with a prepared weight reused', () => {
    for (const zeros of [
      [0, 0],
      [255, 255],
      [255, 0],
    ] as [number, number][]) {
      const p = problem(SHAPES[1] as Shape, 'u8', 'u8', 3, zeros);
      const prepared = prepareConvInt8Weights(p.w, p.wDims, p.wZero, 1);
      const want = convInt8Ref(p);
      expect(convInt8(p, prepared)).toEqual(want);
      expect(convInt8({ ...p, x: codes('u8', p.x.length, 9) }, prepared)).toEqual(
        convInt8Ref({ ...p, x: codes('u8', p.x.length, 9) }),
      );
    }
  });
});

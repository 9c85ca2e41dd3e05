import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../quant/prng.js';
import type { Tensor } from '../../tensor/tensor.js';
import { makeTensor } from '../../tensor/tensor.js';
import { planConv } from '../conv-plan.js';
import { matmulF64 } from '../matmul-kernel.js';
import { planMatMul } from '../matmul-shape.js';
import { opContext } from '../op.js';
import { requantizeCodes } from '../requant.js';
import { convInt32, convInt32Reference } from './conv-integer.js';
import { matmulInt32, offsetByZeroPoint, toInt32 } from './matmul-integer.js';

// The kernel paths of the integer ops (im2col + int8 GEMM with folded zero points) against the
// plain loops on exact offset values.

function codes(dtype: 'uint8' | 'int8', dims: number[], rand: () => number): Tensor {
  const n = dims.reduce((p, d) => p * d, 1);
  const lo = dtype === 'uint8' ? 0 : -128;
  const data = Array.from({ length: n }, () => lo + Math.floor(rand() * 256));
  return makeTensor(dtype, dims, dtype === 'uint8' ? Uint8Array.from(data) : Int8Array.from(data));
}

describe('convInt32 (im2col + int8 GEMM) equals the reference convolution', () => {
  const cases = [
    { x: [1, 1, 5, 5], w: [2, 1, 3, 3], attrs: {} },
    { x: [2, 4, 6, 7], w: [6, 2, 3, 2], attrs: { group: 2, pads: [1, 0, 2, 1], strides: [2, 1], dilations: [1, 2] } },
    { x: [1, 3, 9], w: [4, 3, 4], attrs: { pads: [2, 1], strides: [3] } },
    { x: [1, 2, 4, 4], w: [2, 2, 2, 2], attrs: { auto_pad: 'SAME_UPPER' } },
  ];
  for (const [i, c] of cases.entries()) {
    for (const [xt, wt] of [
      ['uint8', 'int8'],
      ['int8', 'int8'],
      ['uint8', 'uint8'],
    ] as const) {
      it(`case ${i}: x ${xt} [${c.x.join(', ')}], w ${wt} [${c.w.join(', ')}], per-channel w zero points`, () => {
        const rand = mulberry32(100 * i + xt.length + wt.length);
        const x = codes(xt, c.x, rand);
        const w = codes(wt, c.w, rand);
        const xZp = codes(xt, [], rand);
        const wZp = codes(wt, [c.w[0] as number], rand);
        const ctx = opContext(c.attrs);
        const plan = planConv(x.dims, w.dims, ctx);
        expect(convInt32(x, xZp, w, wZp, plan, ctx)).toEqual(convInt32Reference(x, xZp, w, wZp, plan, ctx));
        expect(convInt32(x, undefined, w, undefined, plan, ctx)).toEqual(
          convInt32Reference(x, undefined, w, undefined, plan, ctx),
        );
      });
    }
  }
});

describe('matmulInt32 (int8 GEMM per matrix) equals the reference loop', () => {
  const reference = (a: Tensor, az: Tensor | undefined, b: Tensor, bz: Tensor | undefined) => {
    const ctx = opContext();
    const plan = planMatMul(a.dims, b.dims, ctx);
    return toInt32(matmulF64(offsetByZeroPoint(a, az, true, ctx), offsetByZeroPoint(b, bz, false, ctx), plan));
  };
  it('batched A against a 2-D B with per-column zero points, K not a multiple of the blocks', () => {
    const rand = mulberry32(7);
    const a = codes('uint8', [2, 5, 37], rand);
    const b = codes('int8', [37, 11], rand);
    const az = codes('uint8', [], rand);
    const bz = codes('int8', [11], rand);
    const plan = planMatMul(a.dims, b.dims, opContext());
    expect(matmulInt32(a, az, b, bz, plan, opContext())).toEqual(reference(a, az, b, bz));
  });
  it('broadcast batches of B, M = 1, zero points 0 and 255', () => {
    const rand = mulberry32(8);
    const a = codes('uint8', [1, 1, 300], rand);
    const b = codes('uint8', [3, 300, 4], rand);
    for (const z of [0, 255]) {
      const az = makeTensor('uint8', [], Uint8Array.of(z));
      const bz = makeTensor('uint8', [], Uint8Array.of(255 - z));
      const plan = planMatMul(a.dims, b.dims, opContext());
      expect(matmulInt32(a, az, b, bz, plan, opContext())).toEqual(reference(a, az, b, bz));
    }
  });
  it('a per-row A zero point (not kernel-shaped) takes the plain loop, same result', () => {
    const rand = mulberry32(9);
    const a = codes('int8', [3, 6], rand);
    const b = codes('int8', [6, 2], rand);
    const az = codes('int8', [3], rand);
    const plan = planMatMul(a.dims, b.dims, opContext());
    expect(matmulInt32(a, az, b, undefined, plan, opContext())).toEqual(reference(a, az, b, undefined));
  });
});

describe('requantizeCodes', () => {
  // acc 5, M = fp32(0.1) = 0.100000001490116…: exactly, 5·M = 0.50000000745… rounds to 1; in fp32
  // the product is 0.5 (the nearest float), a tie, which rounds half to even to 0.
  const acc = Int32Array.of(5, -5, 1000, -1000);
  const m = Float64Array.of(Math.fround(0.1));
  const run = (mode: 'float32' | 'float64' | 'fixed-point') =>
    Array.from(requantizeCodes(acc, m, () => 0, 3, 'int8', [-128, 127], mode));
  it('float32 (ONNX Runtime) rounds the fp32 product: the tie goes to even', () => {
    expect(run('float32')).toEqual([3, 3, 103, -97]);
  });
  it('float64 (ONNX reference) and fixed-point (gemmlowp) round the exact product', () => {
    expect(run('float64')).toEqual([4, 2, 103, -97]);
    expect(run('fixed-point')).toEqual([4, 2, 103, -97]);
  });
});

import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { makeTensor } from '../tensor/tensor.js';
import type { Tensor } from '../tensor/tensor.js';
import { pairSaturationError } from './emulate.js';
import { opContext } from './op.js';
import { ConvInteger } from './ops/conv-integer.js';
import { MatMulInteger } from './ops/matmul-integer.js';
import { QLinearConv } from './ops/qlinear-conv.js';
import { runModel } from './run.js';

const f64 = (...v: number[]) => Float64Array.from(v);
const u8 = (dims: number[], ...v: number[]) => makeTensor('uint8', dims, Uint8Array.from(v));
const s8 = (dims: number[], ...v: number[]) => makeTensor('int8', dims, Int8Array.from(v));
const emulated = (attrs: Parameters<typeof opContext>[0] = {}) => ({
  ...opContext(attrs),
  emulate: 'avx2-u8s8' as const,
});
const values = (t: Tensor | undefined) => Array.from(t?.data as ArrayLike<number>);

describe('pairSaturationError (vpmaddubsw: adjacent products added in int16 with saturation)', () => {
  it('a pair above 32767 is clipped: 255·127 + 255·127 = 64770 → 32767', () => {
    expect(pairSaturationError(f64(255, 255), 0, 1, f64(127, 127), 0, 1, 2)).toBe(32767 - 64770);
  });
  it('a pair below -32768 is clipped: 255·(-127) · 2 = -64770 → -32768', () => {
    expect(pairSaturationError(f64(255, 255), 0, 1, f64(-127, -127), 0, 1, 2)).toBe(-32768 + 64770);
  });
  it('a pair that fits is exact: 255·64 · 2 = 32640', () => {
    expect(pairSaturationError(f64(255, 255), 0, 1, f64(64, 64), 0, 1, 2)).toBe(0);
  });
  it('pairs are (0,1), (2,3)…; an odd K pairs the last element with 0', () => {
    // (1,2) would saturate (255·127 · 2); (0,1) = 32385 and (2, pad) = 32385 do not.
    expect(pairSaturationError(f64(0, 255, 255), 0, 1, f64(0, 127, 127), 0, 1, 3)).toBe(0);
    expect(pairSaturationError(f64(255, 255, 255), 0, 1, f64(127, 127, 127), 0, 1, 3)).toBe(32767 - 64770);
  });
});

describe('integer ops under --emulate avx2-u8s8', () => {
  it('MatMulInteger: raw codes saturate, zero points are corrected exactly afterwards', () => {
    const a = u8([1, 4], 255, 255, 255, 255);
    const b = s8([4, 1], 127, 127, 127, 127);
    const zp = u8([], 10);
    expect(values(MatMulInteger([a, b, zp], opContext())[0])).toEqual([4 * 245 * 127]);
    // Two saturated pairs (2 · 32767) minus a_zp · Σb (10 · 508).
    expect(values(MatMulInteger([a, b, zp], emulated())[0])).toEqual([2 * 32767 - 10 * 508]);
  });
  it('MatMulInteger: s8 × s8 (the S8S8 kernel) stays exact', () => {
    const a = s8([1, 2], 127, 127);
    const b = s8([2, 1], 127, 127);
    expect(values(MatMulInteger([a, b], emulated())[0])).toEqual([2 * 127 * 127]);
  });
  it('convolutions flip s8 activations to u8 (x ^ 0x80) before the products, so they saturate', () => {
    const xs = s8([1, 2, 1, 1], 127, 127);
    const ws = s8([1, 2, 1, 1], 127, 127);
    expect(values(ConvInteger([xs, ws], opContext())[0])).toEqual([2 * 127 * 127]);
    // (127 + 128) · 127 · 2 = 64770 → 32767; minus the flipped zero point 128 · Σw (254).
    expect(values(ConvInteger([xs, ws], emulated())[0])).toEqual([32767 - 128 * 254]);
  });
  it('MatMulInteger: u8 weights (the U8U8 kernel) stay exact', () => {
    const a = u8([1, 2], 255, 255);
    const b = u8([2, 1], 255, 255);
    expect(values(MatMulInteger([a, b], emulated())[0])).toEqual([2 * 255 * 255]);
  });

  // x [1, C=2, 1, 2] all 255; w [1, 2, 1, 2] with channel rows [127, 0]: in (kh, kw, c) order the
  // first pair is c0·c1 at kw=0 (255·127 · 2, saturates); in (c, kh, kw) order each pair is one
  // channel's (127, 0) and fits.
  const x = u8([1, 2, 1, 2], 255, 255, 255, 255);
  const w = s8([1, 2, 1, 2], 127, 0, 127, 0);
  it('QLinearConv pairs along (kh, kw, c), as ORT runs it in NHWC', () => {
    const one = makeTensor('float32', [], Float32Array.of(1));
    const yScale = makeTensor('float32', [], Float32Array.of(1000));
    const args = [x, one, u8([], 0), w, one, s8([], 0), yScale, u8([], 0)];
    expect(values(QLinearConv(args, opContext())[0])).toEqual([65]); // 64770 / 1000
    expect(values(QLinearConv(args, emulated())[0])).toEqual([33]); // 32767 / 1000
  });
  it('ConvInteger pairs along (c, kh, kw), its NCHW im2col', () => {
    expect(values(ConvInteger([x, w], emulated())[0])).toEqual([64770]);
    // The same weights laid out so a channel's own pair saturates: [127, 127] per channel.
    expect(values(ConvInteger([x, s8([1, 2, 1, 2], 127, 127, 0, 0)], emulated())[0])).toEqual([32767]);
  });
  it('padding reads the zero point code, which takes part in the pairs', () => {
    // 1×1 input padded to 1×2 on the right: the window is (x, pad) with pad = zero point 255.
    const xp = u8([1, 1, 1, 1], 255);
    const wp = s8([1, 1, 1, 2], 127, 127);
    const zp = u8([], 255);
    const exact = values(ConvInteger([xp, wp, zp], opContext({ pads: [0, 0, 0, 1] }))[0]);
    expect(exact).toEqual([0]);
    expect(values(ConvInteger([xp, wp, zp], emulated({ pads: [0, 0, 0, 1] }))[0])).toEqual([32767 - 255 * 254]);
  });
});

describe('runModel({ emulate }) on QDQ', () => {
  it("DequantizeLinear(u8) → MatMul ← DequantizeLinear(s8) runs as ORT's fused integer kernel", () => {
    const model = makeModel({
      inputs: [{ name: 'xq', dtype: 'uint8', dims: [1, 2] }],
      outputs: [{ name: 'y', dtype: 'float32', dims: [1, 1] }],
      initializers: {
        sx: makeTensor('float32', [], Float32Array.of(0.5)),
        zx: u8([], 0),
        wq: s8([2, 1], 127, 127),
        sw: makeTensor('float32', [1], Float32Array.of(0.25)),
        zw: s8([1], 0),
      },
      nodes: [
        { opType: 'DequantizeLinear', inputs: ['xq', 'sx', 'zx'], outputs: ['x'], name: 'dqx' },
        {
          opType: 'DequantizeLinear',
          inputs: ['wq', 'sw', 'zw'],
          outputs: ['w'],
          name: 'dqw',
          attributes: { axis: 1 },
        },
        { opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], name: 'mm' },
      ],
    });
    const xq = u8([1, 2], 255, 255);
    const run = (emulate?: 'avx2-u8s8') => values(runModel(model, new Map([['xq', xq]]), { emulate }).get('y'));
    expect(run()).toEqual([64770 * 0.5 * 0.25]);
    expect(run('avx2-u8s8')).toEqual([32767 * 0.5 * 0.25]);
  });
});

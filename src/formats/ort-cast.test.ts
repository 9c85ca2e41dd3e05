import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { makeModel } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import type { DType } from '../tensor/dtype.js';
import { onnxDataType } from '../tensor/dtype.js';
import { decodeToFloat32, encodeNumbers } from './convert.js';
import { castToInt } from './integer.js';

/**
 * ONNX Runtime as the oracle: Cast(float32 → narrow) then Cast(narrow → float32), so the narrow
 * type never crosses into JS (onnxruntime-node has no float8/e8m0/int4 tensors). Our side of the
 * comparison is encodeNumbers → decodeToFloat32 on the same float32 inputs.
 */
async function ortRoundTrip(
  mid: DType,
  xs: Float32Array,
  attrs: Readonly<Record<string, number | string>> = {},
): Promise<Float32Array> {
  const model = makeModel({
    nodes: [
      { opType: 'Cast', inputs: ['x'], outputs: ['m'], attributes: { to: onnxDataType(mid), ...attrs } },
      { opType: 'Cast', inputs: ['m'], outputs: ['y'], attributes: { to: onnxDataType('float32') } },
    ],
    inputs: [{ name: 'x', dtype: 'float32', dims: [xs.length] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: [xs.length] }],
    opsets: { '': 25 },
    irVersion: 11,
  });
  const session = await ort.InferenceSession.create(encodeModel(model));
  const result = await session.run({ x: new ort.Tensor('float32', xs, [xs.length]) });
  return result.y!.data as Float32Array;
}

/** Inputs that probe every binade of the narrow formats: random mantissas over 2^-140..2^130, both signs, specials. */
function probeInputs(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < count; i++) out[i] = (next() < 0.5 ? -1 : 1) * (1 + next()) * 2 ** Math.floor(next() * 60 - 30);
  out.set(
    [
      0,
      -0,
      Infinity,
      -Infinity,
      NaN,
      448,
      464,
      465,
      240,
      248,
      57344,
      61440,
      61441,
      2 ** -9,
      2 ** -10,
      2 ** -17,
      2 ** -18,
      1e-45,
    ],
    0,
  );
  return out;
}

/** The ranges where ONNX Runtime 1.30's non-saturating float8 Cast departs from the spec (asserted below). */
function ortOverflowBug(dtype: DType, x: number): boolean {
  const a = Math.abs(x);
  if (dtype === 'float8e4m3fn') return a >= 480 && a < 496;
  if (dtype === 'float8e5m2') return a >= 61440 && a < 65536;
  return false;
}

function sameFloats(got: Float32Array, want: Float32Array, xs: Float32Array): string[] {
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as number;
    const w = want[i] as number;
    if (!(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)))) bad.push(`x=${xs[i]}: ours ${g}, ORT ${w}`);
  }
  return bad;
}

describe('formats agree with ONNX Runtime Cast bit for bit', () => {
  const xs = probeInputs(4000, 12345);
  for (const dtype of [
    'float16',
    'bfloat16',
    'float8e4m3fn',
    'float8e4m3fnuz',
    'float8e5m2',
    'float8e5m2fnuz',
  ] as const) {
    for (const saturate of dtype.startsWith('float8') ? [1, 0] : [1]) {
      it(`${dtype}${dtype.startsWith('float8') ? ` saturate=${saturate}` : ''}`, async () => {
        // Outside ORT's overflow-rounding bugs (see below), which we do not copy.
        const inputs = saturate === 0 ? xs.filter((x) => !ortOverflowBug(dtype, x)) : xs;
        const want = await ortRoundTrip(dtype, inputs, dtype.startsWith('float8') ? { saturate } : {});
        const got = decodeToFloat32(dtype, encodeNumbers(dtype, inputs, { saturate: saturate === 1 }));
        expect(sameFloats(got, want, inputs)).toEqual([]);
      });
    }
  }

  it('known ONNX Runtime 1.30 divergences without saturation, where we follow the Cast table and the conformance data', async () => {
    // E4M3FN: ORT returns ±448 for |x| in [480, 496) although [x] = 480 > FLT_MAX → NaN.
    const e4 = Float32Array.from([480, 490, -495.5]);
    expect(Array.from(await ortRoundTrip('float8e4m3fn', e4, { saturate: 0 }))).toEqual([448, 448, -448]);
    expect(Array.from(decodeToFloat32('float8e4m3fn', encodeNumbers('float8e4m3fn', e4, { saturate: false })))).toEqual(
      [NaN, NaN, NaN],
    );
    // E5M2: ORT returns NaN for |x| in [61440, 65536) although [x] = 65536 > FLT_MAX → ±Inf
    // (test_cast_no_saturate_FLOAT_to_FLOAT8E5M2 expects Inf for overflow).
    const e5 = Float32Array.from([61440, -65000]);
    expect(Array.from(await ortRoundTrip('float8e5m2', e5, { saturate: 0 }))).toEqual([NaN, NaN]);
    expect(Array.from(decodeToFloat32('float8e5m2', encodeNumbers('float8e5m2', e5, { saturate: false })))).toEqual([
      Infinity,
      -Infinity,
    ]);
  });

  for (const roundMode of ['up', 'down', 'nearest'] as const) {
    for (const saturate of [1, 0]) {
      it(`float8e8m0 round_mode=${roundMode} saturate=${saturate}`, async () => {
        // Positive inputs only: ONNX leaves negatives unspecified.
        const pos = xs.map((x) => Math.abs(x));
        const want = await ortRoundTrip('float8e8m0', pos, { saturate, round_mode: roundMode });
        const got = decodeToFloat32(
          'float8e8m0',
          encodeNumbers('float8e8m0', pos, { saturate: saturate === 1, roundMode }),
        );
        expect(sameFloats(got, want, pos)).toEqual([]);
      });
    }
  }

  it('float8e8m0 of negatives and -0: ONNX Runtime treats them as below range, as we do', async () => {
    const neg = Float32Array.from([-0, -1, -4, -1e-30, -3e38]);
    for (const saturate of [1, 0]) {
      const want = await ortRoundTrip('float8e8m0', neg, { saturate });
      const got = decodeToFloat32('float8e8m0', encodeNumbers('float8e8m0', neg, { saturate: saturate === 1 }));
      expect(sameFloats(got, want, neg)).toEqual([]);
    }
  });

  it('int8/uint8/int16/uint16/int32 Cast: truncation toward zero and the low bits, out of int32 → INT32_MIN first', async () => {
    const ints = Float32Array.from([
      0,
      2.7,
      -2.7,
      2.5,
      -2.5,
      127.9,
      128,
      200,
      -129,
      255.5,
      256,
      1e6,
      -1e6,
      65535,
      70000.5,
      NaN,
      Infinity,
      -Infinity,
      2 ** 30,
      2 ** 31,
      2 ** 31 + 256,
      -(2 ** 31),
      -(2 ** 31) - 256,
      3e9,
      -3e9,
      1e20,
    ]);
    for (const dtype of ['int8', 'uint8', 'int16', 'uint16', 'int32'] as const) {
      const want = await ortRoundTrip(dtype, ints);
      const got = Float32Array.from(ints, (x) => castToInt(x, dtype));
      expect(sameFloats(got, want, ints), dtype).toEqual([]);
    }
  });

  it('int4/uint4/int2/uint2 Cast: in-range non-ties and wrap-around agree; ties differ (ORT rounds half away)', async () => {
    const vals = Float32Array.from([-9, -8.6, -2.7, -1.2, 0, 0.4, 1.6, 2.7, 7.2, 8, 9.9, 15, 16.2, 100]);
    for (const dtype of ['int4', 'uint4', 'int2', 'uint2'] as const) {
      const want = await ortRoundTrip(dtype, vals);
      const got = Float32Array.from(vals, (x) => castToInt(x, dtype));
      expect(sameFloats(got, want, vals), dtype).toEqual([]);
    }
    const ties = Float32Array.from([0.5, 2.5, -2.5]);
    expect(Array.from(await ortRoundTrip('int4', ties))).toEqual([1, 3, -3]);
    expect(Array.from(ties, (x) => castToInt(x, 'int4'))).toEqual([0, 2, -2]);
  });
});

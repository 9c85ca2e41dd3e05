import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { affineParams, quantizeAffine } from './affine.js';
import { blockShapeFor, makeLayout } from './layout.js';
import { sqnrDb } from './metrics.js';
import { quantizeInt8Channels } from './int8-quant.js';

/** The reference: per-channel absmax, affineParams, quantizeAffine (float division per element). */
function reference(data: Float32Array, dims: number[], axis: number): { codes: Int8Array; scale: Float32Array } {
  const layout = makeLayout(dims, blockShapeFor(dims, { axis }));
  const C = dims[axis] as number;
  let inner = 1;
  for (let k = axis + 1; k < dims.length; k++) inner *= dims[k] as number;
  const am = new Float32Array(C);
  for (let i = 0; i < data.length; i++) {
    const c = Math.floor(i / inner) % C;
    am[c] = Math.max(am[c] as number, Math.abs(data[i] as number));
  }
  const params = affineParams(
    am.map((a) => -a),
    am,
    { qmin: -127, qmax: 127, symmetric: true },
  );
  return { codes: quantizeAffine(data, layout, params, new Int8Array(data.length)) as Int8Array, scale: params.scale };
}

describe('quantizeInt8Channels (fused, multiply by 1/s with an exact fallback near ties)', () => {
  it('equals quantizeAffine on values placed exactly on, and one float32 step beside, every half-code', () => {
    // Channel c: max |w| = 127 · s_c, so scale = s_c; then w = (k + 0.5) · s_c and its neighbours.
    const dims = [2 * 255 * 3 + 1, 4];
    const [K, N] = dims as [number, number];
    const w = new Float32Array(K * N);
    const s = [0.1, 1 / 3, 7.25e-3, 3e-39];
    for (let n = 0; n < N; n++) {
      const sc = s[n] as number;
      w[n] = 127 * sc;
      let k = 1;
      for (let h = -127; h < 127; h++) {
        const tie = Math.fround((h + 0.5) * sc);
        for (const v of [tie, nextFloat(tie, -1), nextFloat(tie, 1)]) {
          if (k < K) w[k++ * N + n] = v;
        }
      }
    }
    for (const axis of [0, 1]) {
      const got = quantizeInt8Channels(w, dims, axis, 'w');
      const ref = reference(w, dims, axis);
      expect(got.scale).toEqual(ref.scale);
      expect(got.codes).toEqual(ref.codes);
    }
  });

  it('equals quantizeAffine on random 3-D weights along every axis, and its SQNR is that of the dequantized weights (property)', () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 7 })),
        fc.integer({ min: 0, max: 2 }),
        fc.integer(),
        (dims3, axis, seed) => {
          const dims = [...dims3];
          const n = dims.reduce((a, b) => a * b, 1);
          let st = seed >>> 0;
          const w = Float32Array.from(
            { length: n },
            () => ((st = (Math.imul(st, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 10,
          );
          const got = quantizeInt8Channels(w, dims, axis, 'w');
          const ref = reference(w, dims, axis);
          expect(got.codes).toEqual(ref.codes);
          expect(got.scale).toEqual(ref.scale);
          const C = dims[axis] as number;
          let inner = 1;
          for (let k = axis + 1; k < 3; k++) inner *= dims[k] as number;
          const back = Float32Array.from(w, (_, i) =>
            Math.fround((ref.codes[i] as number) * (ref.scale[Math.floor(i / inner) % C] as number)),
          );
          const want = sqnrDb(w, back);
          if (Number.isFinite(want)) expect(got.sqnrDb).toBeCloseTo(want, 6);
          else expect(got.sqnrDb).toBe(Infinity);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('names the first non-finite element', () => {
    const w = new Float32Array([1, 2, NaN, 4]);
    expect(() => quantizeInt8Channels(w, [2, 2], 1, 'layer.w')).toThrow(/layer\.w.*NaN.*flat index 2/);
  });
});

/** The float32 next to v towards ±∞ (dir = ±1). */
function nextFloat(v: number, dir: 1 | -1): number {
  const f = new Float32Array([v]);
  const u = new Int32Array(f.buffer);
  if (v === 0) return dir * 2 ** -149;
  u[0] = (u[0] as number) + (v > 0 === dir > 0 ? 1 : -1);
  return f[0] as number;
}

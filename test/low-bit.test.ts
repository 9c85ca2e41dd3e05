import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { quantizeModelBytesGptq } from '../src/flows/gptq.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { makeModel } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { SCHEMES, type SchemeName } from '../src/passes/weight-only/index.js';
import { nbitsOptionsFor } from '../src/passes/weight-only/scheme.js';
import { codeRange, dequantizeNBits, quantizeNBits } from '../src/quant/nbits-quant.js';
import { dequantizeHqq, hqqQuantize, shrinkLp } from '../src/quant/hqq.js';
import { quantizeSuperBlocks } from '../src/quant/superblock.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';

/*
 * 2-, 3- and 8-bit asymmetric MatMulNBits schemes on tiny synthetic layers: what ONNX Runtime
 * computes is A · (our dequantized W); codes stay inside their levels; the search never loses to
 * round-to-nearest; GPTQ through the calibration path lowers the layer's output error.
 */

function matmulModel(K: number, N: number, w: Float32Array): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm' }],
      inputs: [{ name: 'A', dtype: 'float32', dims: ['M', K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: ['M', N] }],
      initializers: { W: makeTensor('float32', [K, N], w) },
      opsets: { '': 17 },
    }),
  );
}

async function run(bytes: Uint8Array, a: Float32Array, M: number, K: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ A: new ort.Tensor('float32', a, [M, K]) });
  return out[s.outputNames[0] as string]!.data as Float32Array;
}

const maxAbs = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d / maxAbs(b);
}
const sqErr = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - (b[i] as number)) ** 2, 0);

const LOW_BIT: SchemeName[] = ['q2', 'q2-asym', 'q3', 'q3-asym', 'q8-block-asym'];
const optionsOf = (scheme: SchemeName, blockSize: number, rtn: boolean) => {
  const s = SCHEMES[scheme];
  if (s.kind !== 'nbits') throw new Error(`${scheme} is not an nbits scheme`);
  return nbitsOptionsFor(s, blockSize, rtn);
};

describe('2-, 3-bit and asymmetric 8-bit MatMulNBits: ONNX Runtime computes with the weights we dequantize', () => {
  const K = 70; // a padded last block
  const N = 12;
  const M = 3;
  const w = randn(K * N, 1);
  w[5] = 6;
  const a = randn(M * K, 2);
  const column = (n: number, out: Float32Array) => {
    for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
  };
  for (const scheme of LOW_BIT) {
    for (const rtn of [false, true]) {
      it(`${scheme}${rtn ? ' --rtn' : ''} block 16: ORT = A · dequantized W (1e-5), codes inside the levels`, async () => {
        const o = optionsOf(scheme, 16, rtn);
        const q = quantizeModelBytes(matmulModel(K, N, w), { scheme, blockSize: 16, rtn });
        expect(q.report.layers[0]!.form).toMatch(new RegExp(`^MatMulNBits\\(bits=${o.bits}`));
        const nb = quantizeNBits(K, N, column, o);
        const { lo, hi } = codeRange(o);
        const used = new Set(nb.codes);
        for (const c of used) expect(c >= lo && c <= hi).toBe(true);
        expect(used.size).toBeLessThanOrEqual(2 ** (o.codeBits ?? o.bits));
        const expected = await run(matmulModel(K, N, dequantizeNBits(nb, 16)), a, M, K);
        expect(maxRelDiff(await run(q.bytes, a, M, K), expected)).toBeLessThan(1e-5);
      });
    }
  }

  it('3-bit symmetric round-to-nearest, hand-worked: m = −4 → scale 1, codes round(v) + 8 in 4 … 11', () => {
    const v = Float32Array.from([-4, 1.25, 0, 3.5, -0.75, 0.25, 2.6, -2, 0, 0, 0, 0, 0, 0, 0, 0]);
    const q = quantizeNBits(16, 1, (_, out) => out.set(v), {
      bits: 4,
      codeBits: 3,
      blockSize: 16,
      symmetric: true,
      rtn: true,
    });
    expect(q.scales[0]).toBe(1);
    // roundf(v + 4) + 4 clamped to 4 … 11: 3.5 → 7.5 → 8 → 12 → clamped to 11 (level 3).
    expect([...q.codes.slice(0, 8)]).toEqual([4, 9, 8, 11, 7, 8, 11, 6]);
    expect(q.zeroPoints).toBeUndefined(); // the default zero point 8 of 4-bit storage
  });

  it('the search never loses to round-to-nearest (squared weight error) at 2 and 3 bits', () => {
    for (const scheme of ['q2', 'q2-asym', 'q3', 'q3-asym'] as const) {
      const err = (rtn: boolean) =>
        sqErr(w, dequantizeNBits(quantizeNBits(K, N, column, optionsOf(scheme, 32, rtn)), 32));
      expect(err(false)).toBeLessThanOrEqual(err(true));
    }
  });

  it('more levels, less error: q2 > q3 > q4 squared error, and q8-block-asym below q4-asym', () => {
    const err = (scheme: SchemeName) =>
      sqErr(w, dequantizeNBits(quantizeNBits(K, N, column, optionsOf(scheme, 32, false)), 32));
    expect(err('q2-asym')).toBeGreaterThan(err('q3-asym'));
    expect(err('q3-asym')).toBeGreaterThan(err('q4-asym'));
    expect(err('q3')).toBeGreaterThan(err('q4'));
    expect(err('q8-block-asym')).toBeLessThan(err('q4-asym') / 100);
  });
});

describe('GPTQ at 2 and 3 bits through the calibration path', () => {
  // Correlated inputs (a few strong directions), where GPTQ's compensation has something to use.
  const K = 64;
  const N = 16;
  const rows = 256;
  const w = randn(K * N, 5);
  const basis = randn(4 * K, 6);
  const mix = randn(rows * 4, 7);
  const noise = randn(rows * K, 8, 0.05);
  const x = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) {
      let v = noise[r * K + k] as number;
      for (let j = 0; j < 4; j++) v += (mix[r * 4 + j] as number) * (basis[j * K + k] as number);
      x[r * K + k] = v;
    }
  for (const scheme of ['q2-asym', 'q3', 'q3-asym'] as const) {
    it(`${scheme}: the output error on the calibration rows is below the data-free model's`, async () => {
      const bytes = matmulModel(K, N, w);
      const calib = new Map([['A', makeTensor('float32', [rows, K], x)]]);
      const g = await quantizeModelBytesGptq(bytes, { scheme }, calib);
      expect(g.report.layers[0]!.form).toMatch(/ gptq$/);
      const ref = await run(bytes, x, rows, K);
      const free = sqErr(await run(quantizeModelBytes(bytes, { scheme }).bytes, x, rows, K), ref);
      const got = sqErr(await run(g.bytes, x, rows, K), ref);
      expect(got).toBeLessThan(free);
    });
  }
});

describe('HQQ (--hqq): half-quadratic zero points, float zero points in MatMulNBits', () => {
  const K = 70;
  const N = 12;
  const M = 3;
  const w = randn(K * N, 11);
  w[7] = 5; // an outlier HQQ's ℓ0.7 error lets go
  const a = randn(M * K, 12);
  const column = (n: number, out: Float32Array) => {
    for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
  };

  it('shrink_p, hand-worked: 1 → 1 − 1/β; a small error (|x|^(p−1)/β > |x|) → 0; sign kept', () => {
    expect(shrinkLp(1, 10, 0.7)).toBeCloseTo(0.9, 12);
    expect(shrinkLp(-2, 10, 0.7)).toBeCloseTo(-(2 - 2 ** -0.3 / 10), 12);
    expect(shrinkLp(0.01, 10, 0.7)).toBe(0);
    expect(shrinkLp(0, 10, 0.7)).toBe(0);
  });

  it('no steps = the min-max start, hand-worked: [−1, 0, 0.5, 2] at 2 bits → s = 1, z = 1', () => {
    const v = Float32Array.from([-1, 0, 0.5, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const q = hqqQuantize(16, 1, (_, out) => out.set(v), { bits: 2, blockSize: 16, iterations: 0 });
    expect(q.scales[0]).toBe(1); // 1 / (3 / (2 − (−1)))
    expect(q.zeros[0]).toBe(1);
    // round(v + 1) half to even: 0.5 + 1 = 1.5 → 2.
    expect([...q.codes.slice(0, 4)]).toEqual([0, 1, 2, 3]);
  });

  it('the optimisation lowers mean|W − Wr| from the min-max start, within 20 steps', () => {
    for (const bits of [2, 4] as const) {
      const q = hqqQuantize(K, N, column, { bits, blockSize: 32 });
      expect(q.error).toBeLessThan(q.startError);
      expect(q.steps).toBeGreaterThan(0);
      expect(q.steps).toBeLessThanOrEqual(20);
    }
  });

  for (const scheme of ['q4', 'q3-asym', 'q2'] as const) {
    it(`${scheme} --hqq: ORT = A · dequantized W (1e-5) with float zero points`, async () => {
      const o = optionsOf(scheme, 32, false);
      const q = quantizeModelBytes(matmulModel(K, N, w), { scheme, blockSize: 32, hqq: true });
      expect(q.report.layers[0]!.form).toMatch(/float zero points( as a per-block correction)?\) hqq$/);
      const h = hqqQuantize(K, N, column, { bits: o.bits, codeBits: o.codeBits, blockSize: 32 });
      const expected = await run(matmulModel(K, N, dequantizeHqq(h, 32)), a, M, K);
      expect(maxRelDiff(await run(q.bytes, a, M, K), expected)).toBeLessThan(1e-5);
    });
  }

  it('--hqq with an 8-bit scheme, qdq or rtn is a user error naming the options', () => {
    const m = matmulModel(K, N, w);
    expect(() => quantizeModelBytes(m, { scheme: 'q8-block', hqq: true })).toThrow(
      /`hqq` applies to the 2-, 3- and 4-bit/,
    );
    expect(() => quantizeModelBytes(m, { scheme: 'q4', hqq: true, format: 'qdq' })).toThrow(/DequantizeLinear/);
    expect(() => quantizeModelBytes(m, { scheme: 'q4', hqq: true, rtn: true })).toThrow(
      /QK_BAD_OPTION|choose the zero points/,
    );
  });
});

describe('MatMulNBits accuracy_level 4 (`accuracyLevel`): int8 activations per block', () => {
  it('q4: the attribute is written; ORT output within 2 % of fp32 activations, not bit-equal', async () => {
    const K = 128;
    const N = 16;
    const M = 8;
    const w = randn(K * N, 21);
    const a = randn(M * K, 22);
    const fp = quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q4', blockSize: 32 });
    const i8 = quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q4', blockSize: 32, accuracyLevel: 4 });
    const { decodeModel } = await import('../src/io/onnx/proto.js');
    const node = decodeModel(i8.bytes).graph!.node[0]!;
    expect(node.attribute.find((x) => x.name === 'accuracy_level')?.i).toBe(4n);
    const y32 = await run(fp.bytes, a, M, K);
    const y8 = await run(i8.bytes, a, M, K);
    const d = maxRelDiff(y8, y32);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(0.02);
  });
});

describe('q4-k: 6-bit sub-block scales and mins under fp16 super-scales (k-quant), run as MatMulNBits', () => {
  const K = 512; // two super-blocks of 256
  const N = 6;
  const M = 3;
  const w = randn(K * N, 31);
  const a = randn(M * K, 32);
  const column = (n: number, out: Float32Array) => {
    for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
  };

  it('every sub-block scale is d·sc and every min dmin·mi, with d, dmin fp16 and sc, mi in 0 … 63', () => {
    const q = quantizeSuperBlocks(K, N, column, { bits: 4, blockSize: 32 });
    for (let n = 0; n < N; n++) {
      for (let s = 0; s < 2; s++) {
        const idx = Array.from({ length: 8 }, (_, i) => n * 16 + s * 8 + i);
        const d = Math.max(...idx.map((p) => q.scales[p] as number)) / 63;
        const mins = idx.map((p) => (q.scales[p] as number) * (q.zeros[p] as number));
        const dmin = Math.max(...mins) / 63;
        for (const [j, p] of idx.entries()) {
          // Integer multiples of the super-block steps (up to float32 rounding).
          const sc = (q.scales[p] as number) / d;
          expect(Math.abs(sc - Math.round(sc))).toBeLessThan(1e-3);
          expect(Math.abs(mins[j]! / dmin - Math.round(mins[j]! / dmin))).toBeLessThan(1e-3);
        }
      }
    }
    // 4 bits of codes + 12 bits per 32 + 32 bits per 256 = 4.5 bits per weight.
    expect((q.trueBytes * 8) / (K * N)).toBe(4.5);
  });

  it('ORT = A · dequantized W (1e-5); the report gives the packed bytes; error close to q4-asym', async () => {
    const q = quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q4-k' });
    const l = q.report.layers[0]!;
    expect(l.form).toMatch(/k-quant$/);
    expect(l.trueBytes).toBe((4.5 * K * N) / 8);
    const sb = quantizeSuperBlocks(K, N, column, { bits: 4, blockSize: 32 });
    const expected = await run(matmulModel(K, N, dequantizeHqq(sb, 32)), a, M, K);
    expect(maxRelDiff(await run(q.bytes, a, M, K), expected)).toBeLessThan(1e-5);
    const asym = sqErr(w, dequantizeNBits(quantizeNBits(K, N, column, optionsOf('q4-asym', 32, false)), 32));
    expect(sqErr(w, dequantizeHqq(sb, 32))).toBeLessThan(asym * 1.5);
  });
});

describe('SpQR-style outliers (`outliers`): the widest input rows in fp16 beside the low-bit weight', () => {
  const K = 96;
  const N = 10;
  const M = 4;
  const w = randn(K * N, 41);
  for (let n = 0; n < N; n++) w[17 * N + n] = 8 * (w[17 * N + n] as number); // one wide input row
  const a = randn(M * K, 42);

  it('q3-asym block 16 + 2 %: row 17 is kept; ORT = A · (dequantized low-bit W + fp16 rows) (1e-5), error below plain q3', async () => {
    const q = quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q3-asym', blockSize: 16, outliers: 0.02 });
    const { decodeModel } = await import('../src/io/onnx/proto.js');
    const { modelFromProto } = await import('../src/graph/from-onnx.js');
    const g = modelFromProto(decodeModel(q.bytes)).graph;
    expect(g.nodes.map((n) => n.opType).sort()).toEqual(['Add', 'Cast', 'Gather', 'MatMul', 'MatMulNBits']);
    const rows = [...(g.initializers.get('W_outlier_rows')!.load().data as BigInt64Array)].map(Number);
    expect(rows).toHaveLength(2); // ⌈0.02 · 96⌉
    expect(rows).toContain(17);
    // Truth: the low-bit weight of W without those rows, plus the rows in fp16.
    const { encodeFloat16, decodeFloat16 } = await import('../src/formats/float16.js');
    const low = Float32Array.from(w);
    for (const k of rows) for (let n = 0; n < N; n++) low[k * N + n] = 0;
    const o = optionsOf('q3-asym', 16, false);
    const deq = dequantizeNBits(
      quantizeNBits(
        K,
        N,
        (n, out) => {
          for (let k = 0; k < K; k++) out[k] = low[k * N + n] as number;
        },
        o,
      ),
      16,
    );
    for (const k of rows)
      for (let n = 0; n < N; n++)
        deq[k * N + n] = (deq[k * N + n] as number) + decodeFloat16(encodeFloat16(w[k * N + n] as number));
    const expected = await run(matmulModel(K, N, deq), a, M, K);
    const got = await run(q.bytes, a, M, K);
    expect(maxRelDiff(got, expected)).toBeLessThan(1e-5);
    const ref = await run(matmulModel(K, N, w), a, M, K);
    const plain = await run(
      quantizeModelBytes(matmulModel(K, N, w), { scheme: 'q3-asym', blockSize: 16 }).bytes,
      a,
      M,
      K,
    );
    expect(sqErr(got, ref)).toBeLessThan(sqErr(plain, ref));
    // True bytes: low-bit part + 2 per kept weight + 8 per index.
    // codes K·N/2, fp32 scales 6 blocks × N, 4-bit zero points packed 3 bytes per column.
    expect(q.report.layers[0]!.bytesAfter).toBe((K * N) / 2 + 6 * N * 4 + 3 * N + 2 * 2 * N + 8 * 2);
  });
});

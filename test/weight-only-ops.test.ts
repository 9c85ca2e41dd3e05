import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { makeAttribute } from '../src/io/onnx/attribute.js';
import { makeModel, type ModelSpec } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { quantizeModel, quantizeModelBytes } from '../src/flows/quantize.js';
import { dataFreeSearch } from '../src/passes/weight-only/bnb4-handler.js';
import { dequantizeBnb4, quantizeBnb4 } from '../src/quant/bnb4-quant.js';
import { dequantizeNBits, quantizeNBits } from '../src/quant/nbits-quant.js';
import { makeTensor } from '../src/tensor/tensor.js';
import type { SchemeName } from '../src/passes/weight-only/index.js';
import { randn } from './helpers/random.js';

/** Deterministic normal-ish values (sum of uniforms from an LCG). */
async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run(feeds);
  return out[s.outputNames[0] as string]!.data as Float32Array;
}

function matmulModel(K: number, N: number, w: Float32Array, M = 3): Uint8Array {
  return encodeModel(
    makeModel({
      nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'], name: 'mm' }],
      inputs: [{ name: 'A', dtype: 'float32', dims: [M, K] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: [M, N] }],
      initializers: { W: makeTensor('float32', [K, N], w) },
      opsets: { '': 17 },
    }),
  );
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d / scale;
}

describe('MatMulNBits layout: the weights our code believes in are what ONNX Runtime computes with', () => {
  // K = 70 is not a multiple of any block size: the last block is padded.
  const K = 70;
  const N = 12;
  const M = 3;
  const w = randn(K * N, 1);
  w[5] = 9; // an outlier
  const a = randn(M * K, 2);
  const cases: [SchemeName, number][] = [
    ['q4', 16],
    ['q4', 32],
    ['q4-asym', 32],
    ['q4-asym', 64],
    ['q8-block', 32],
    ['q4', 128],
  ];
  for (const [scheme, blockSize] of cases) {
    it(`${scheme} block ${blockSize}: ORT output = A · dequantized W within 1e-5 relative`, async () => {
      const q = quantizeModelBytes(matmulModel(K, N, w, M), { scheme, blockSize });
      const model = modelFromProto((await import('../src/io/onnx/proto.js')).decodeModel(q.bytes));
      expect(model.graph.nodes.map((n) => n.opType)).toEqual(['MatMulNBits']);
      const bits = scheme === 'q8-block' ? 8 : 4;
      const col = new Float32Array(K);
      const nb = quantizeNBits(
        K,
        N,
        (n, out) => {
          for (let k = 0; k < K; k++) out[k] = w[k * N + n] as number;
        },
        { bits, blockSize, symmetric: scheme !== 'q4-asym' },
      );
      const wq = dequantizeNBits(nb, blockSize);
      void col;
      const expected = await run(matmulModel(K, N, wq, M), { A: new ort.Tensor('float32', a, [M, K]) });
      const got = await run(q.bytes, { A: new ort.Tensor('float32', a, [M, K]) });
      expect(maxRelDiff(got, expected)).toBeLessThan(1e-5);
      // And the quantized weight is close to the original (4-bit: > 15 dB SQNR on Gaussian data).
      expect(q.report.layers[0]!.sqnrDb).toBeGreaterThan(bits === 8 ? 35 : 15);
    });
  }

  it('--rtn reproduces ONNX Runtime MatMul4BitsQuantizer on a hand-worked block', () => {
    // One block of 16: largest magnitude −4 → scale = −4 / −8 = 0.5, zp 8;
    // code = roundf(v / 0.5 + 8): 1.25 → 10.5 → 11 (ties away from zero, as C roundf).
    const v = Float32Array.from([-4, 1.25, 0, 3.5, -0.75, 0.25, 2, -2, 0, 0, 0, 0, 0, 0, 0, 0]);
    const q = quantizeNBits(16, 1, (_, out) => out.set(v), { bits: 4, blockSize: 16, symmetric: true, rtn: true });
    expect(q.scales[0]).toBe(0.5);
    expect([...q.codes.slice(0, 8)]).toEqual([0, 11, 8, 15, 7, 9, 12, 4]);
    // -0.75/0.5 + 8 = 6.5 → roundf → 7 (away from zero); 0.25/0.5 + 8 = 8.5 → 9.
    expect(q.packed[0]).toBe(0 | (11 << 4));
  });

  it('search never loses to round-to-nearest on any block (squared error)', () => {
    const Kb = 256;
    const x = randn(Kb * 8, 7);
    for (let i = 0; i < x.length; i += 37) x[i] = (x[i] as number) * 12; // outliers
    const col = (n: number, out: Float32Array) => {
      for (let k = 0; k < Kb; k++) out[k] = x[k * 8 + n] as number;
    };
    for (const symmetric of [true, false]) {
      const rtn = dequantizeNBits(quantizeNBits(Kb, 8, col, { bits: 4, blockSize: 32, symmetric, rtn: true }), 32);
      const srch = dequantizeNBits(quantizeNBits(Kb, 8, col, { bits: 4, blockSize: 32, symmetric }), 32);
      for (let b = 0; b < (Kb / 32) * 8; b++) {
        const n = b % 8;
        const k0 = Math.floor(b / 8) * 32;
        let er = 0;
        let es = 0;
        for (let k = k0; k < k0 + 32; k++) {
          const i = k * 8 + n;
          er += ((x[i] as number) - (rtn[i] as number)) ** 2;
          es += ((x[i] as number) - (srch[i] as number)) ** 2;
        }
        expect(es).toBeLessThanOrEqual(er * (1 + 1e-6));
      }
    }
  });
});

describe('MatMulBnb4 layout (nibble order, transposition) checked against ONNX Runtime', () => {
  const K = 96;
  const N = 10;
  const M = 4;
  const w = randn(K * N, 3);
  const a = randn(M * K, 4);
  for (const scheme of ['nf4', 'fp4'] as const) {
    for (const blockSize of [32, 64]) {
      it(`${scheme} block ${blockSize}: ORT output = A · dequantized W within 1e-5 relative`, async () => {
        const q = quantizeModelBytes(matmulModel(K, N, w, M), { scheme, blockSize });
        const wt = new Float32Array(N * K);
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[n * K + k] = w[k * N + n] as number;
        // Data-free nf4 stores the plain absmax (bnb4-handler.ts dataFreeSearch), fp4 the searched constant.
        const back = dequantizeBnb4(
          quantizeBnb4(wt, { type: scheme, blockSize, rtn: !dataFreeSearch(scheme) }),
          scheme,
          blockSize,
        );
        const wq = new Float32Array(K * N);
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wq[k * N + n] = back[n * K + k] as number;
        const expected = await run(matmulModel(K, N, wq, M), { A: new ort.Tensor('float32', a, [M, K]) });
        const got = await run(q.bytes, { A: new ort.Tensor('float32', a, [M, K]) });
        expect(maxRelDiff(got, expected)).toBeLessThan(1e-5);
      });
    }
  }

  it('--double-quant runs in ORT and reports the bytes 8-bit constants would save', async () => {
    const q = quantizeModelBytes(matmulModel(K, N, w, M), { scheme: 'nf4', doubleQuant: true });
    const got = await run(q.bytes, { A: new ort.Tensor('float32', a, [M, K]) });
    expect(got.every(Number.isFinite)).toBe(true);
    // 960 weights / 64 = 15 blocks: 60 bytes fp32 vs 15 + 4 (one second-level absmax) + 4 (mean).
    expect(q.report.layers[0]!.note).toContain('37 bytes smaller');
  });
});

describe('int8 per-channel: pathological channels', () => {
  // W [K=8, N=4]: column 0 all zero, column 1 subnormal only (~1e-40), column 2 with a 30× outlier.
  const K = 8;
  const N = 4;
  const w = randn(K * N, 5, 0.1);
  for (let k = 0; k < K; k++) {
    w[k * N] = 0;
    w[k * N + 1] = (k % 2 ? 1 : -1) * 1e-40 * (k + 1);
  }
  w[3 * N + 2] = 3;

  for (const scheme of ['int8', 'fp8', 'q4', 'nf4'] as SchemeName[]) {
    it(`${scheme}: an all-zero channel stays exactly zero, no scale is 0, NaN or subnormal, ORT output finite`, async () => {
      const blockSize = scheme === 'q4' ? 16 : scheme === 'nf4' ? 16 : undefined;
      const { model, report } = quantizeModel(
        modelFromProto(
          makeModel({
            nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'] }],
            inputs: [{ name: 'A', dtype: 'float32', dims: [2, K] }],
            outputs: [{ name: 'Y', dtype: 'float32', dims: [2, N] }],
            initializers: { W: makeTensor('float32', [K, N], w) },
            opsets: { '': 19 },
          }),
        ),
        { scheme, blockSize },
      );
      for (const init of model.graph.initializers.values()) {
        if (!/scale|absmax/.test(init.name)) continue;
        const s = init.load().data as Float32Array;
        for (const v of s) {
          expect(Number.isFinite(v)).toBe(true);
          if (scheme !== 'nf4') expect(Math.abs(v)).toBeGreaterThanOrEqual(2 ** -126);
        }
      }
      expect(report.layers[0]!.scheme).toBe(scheme);
      const a = new Float32Array(2 * K).fill(1);
      const y = await run(encodeModel(modelToProto(model)), { A: new ort.Tensor('float32', a, [2, K]) });
      expect(y.every(Number.isFinite)).toBe(true);
      expect(y[0]).toBe(0); // column 0 is all zero
      expect(y[N]).toBe(0);
      expect(Math.abs(y[1] as number)).toBeLessThan(1e-30); // subnormal column: (near) zero, not garbage
    });
  }

  it('int8 weights equal the ONNX Runtime quantizer formula: scale = max|w|/127, q = round_half_even(w/scale)', () => {
    const { model } = quantizeModel(
      modelFromProto(
        makeModel({
          nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'] }],
          inputs: [{ name: 'A', dtype: 'float32', dims: [2, K] }],
          outputs: [{ name: 'Y', dtype: 'float32', dims: [2, N] }],
          initializers: { W: makeTensor('float32', [K, N], w) },
        }),
      ),
      { scheme: 'int8' },
    );
    const q = model.graph.initializers.get('W_quantized')!.load().data as Int8Array;
    const s = model.graph.initializers.get('W_scale')!.load().data as Float32Array;
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(w[k * N + 2] as number));
    expect(s[2]).toBe(Math.fround(Math.fround(2 * amax) / 254));
    expect(s[0]).toBe(1); // all-zero channel: ORT's convention
    expect(q[3 * N + 2]).toBe(127);
    for (let k = 0; k < K; k++) {
      const v = Math.fround((w[k * N + 3] as number) / (s[3] as number));
      const r = Math.round(v);
      const even = r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
      expect(q[k * N + 3]).toBe(even);
    }
  });
});

describe('graph forms', () => {
  const K = 32;
  const N = 16;
  const w = randn(K * N, 9);
  const spec = (constant: boolean): ModelSpec => ({
    nodes: [
      ...(constant
        ? [{ opType: 'Constant', inputs: [], outputs: ['W'], attributes: { value: makeTensor('float32', [K, N], w) } }]
        : []),
      { opType: 'MatMul', inputs: ['A', 'W'], outputs: ['H'], name: 'first' },
      { opType: 'Relu', inputs: ['H'], outputs: ['R'] },
      {
        opType: 'Gemm',
        inputs: ['R', 'W2', 'C'],
        outputs: ['G'],
        name: 'gemm',
        attributes: { transB: 1, alpha: 0.5, beta: makeAttribute('beta', 2, 'float') },
      },
      { opType: 'MatMul', inputs: ['G', 'W'], outputs: ['Y'], name: 'tied' },
    ],
    inputs: [{ name: 'A', dtype: 'float32', dims: [2, K] }],
    outputs: [{ name: 'Y', dtype: 'float32', dims: [2, N] }],
    initializers: {
      ...(constant ? {} : { W: makeTensor('float32', [K, N], w) }),
      W2: makeTensor('float32', [K, N], randn(K * N, 10, 0.2)),
      C: makeTensor('float32', [K], randn(K, 11)),
    },
    opsets: { '': 17 },
  });
  const a = randn(2 * K, 12);

  for (const scheme of [
    'int8',
    'q4',
    'q4-asym',
    'q8-block',
    'nf4',
    'fp4',
    'fp16',
    'bf16',
    'fp8',
    'fp8-e5m2',
  ] as SchemeName[]) {
    it(`${scheme}: a model with Constant-node weights (no initializers), a Gemm (transB, alpha, beta) and a tied weight runs in ORT close to fp32`, async () => {
      const ref = await run(encodeModel(makeModel(spec(false))), { A: new ort.Tensor('float32', a, [2, K]) });
      const q = quantizeModelBytes(encodeModel(makeModel(spec(true))), {
        scheme,
        blockSize: scheme === 'nf4' || scheme === 'fp4' ? 32 : undefined,
      });
      const got = await run(q.bytes, { A: new ort.Tensor('float32', a, [2, K]) });
      const tol =
        { int8: 0.03, 'q8-block': 0.03, fp16: 0.003, bf16: 0.02, fp8: 0.1, 'fp8-e5m2': 0.2 }[scheme as string] ?? 0.3;
      expect(maxRelDiff(got, ref)).toBeLessThan(tol);
      // The tied weight W is quantized once: one report row for it, read by both MatMuls.
      const row = q.report.layers.find((l) => l.weight === 'W');
      expect(row?.nodes).toEqual(['first', 'tied']);
      expect(row?.scheme).toBe(scheme);
    });
  }

  it('--exclude and --keep-first-last leave layers in fp32 with the reason in the report', () => {
    const r1 = quantizeModelBytes(encodeModel(makeModel(spec(false))), { scheme: 'int8', exclude: ['Gemm'] });
    expect(r1.report.layers.find((l) => l.weight === 'W2')).toMatchObject({
      scheme: 'fp32',
      note: 'excluded (`exclude` Gemm)',
    });
    const r2 = quantizeModelBytes(encodeModel(makeModel(spec(false))), { scheme: 'q4', keepFirstLast: true });
    const wRow = r2.report.layers.find((l) => l.weight === 'W');
    // W feeds both the first and the last layer: both kept, so W stays fp32.
    expect(wRow?.scheme).toBe('fp32');
    expect(wRow?.note).toContain('`keepFirstLast`');
  });

  it('--format qdq writes opset-21 blocked DequantizeLinear (int4) that ORT runs', async () => {
    const ref = await run(encodeModel(makeModel(spec(false))), { A: new ort.Tensor('float32', a, [2, K]) });
    for (const scheme of ['q4', 'q4-asym'] as SchemeName[]) {
      const q = quantizeModelBytes(encodeModel(makeModel(spec(false))), { scheme, format: 'qdq', blockSize: 16 });
      expect(q.report.notes.join(' ')).toContain('raised from 17 to 21');
      const got = await run(q.bytes, { A: new ort.Tensor('float32', a, [2, K]) });
      expect(maxRelDiff(got, ref)).toBeLessThan(0.3);
    }
  });
});

describe("weight names holding '|' (once the separator of the results' string keys)", () => {
  // K ≠ N, so reading a weight in the wrong layout changes the output (or fails).
  const K = 48;
  const N = 32;
  const spec = (mm: string, gemm: string): ModelSpec => ({
    nodes: [
      { opType: 'MatMul', inputs: ['A', mm], outputs: ['H'], name: 'mm' },
      { opType: 'Gemm', inputs: ['H', gemm], outputs: ['Y'], name: 'gemm', attributes: { transB: 1 } },
    ],
    inputs: [{ name: 'A', dtype: 'float32', dims: [2, K] }],
    outputs: [{ name: 'Y', dtype: 'float32', dims: [2, K] }],
    initializers: {
      [mm]: makeTensor('float32', [K, N], randn(K * N, 21)),
      [gemm]: makeTensor('float32', [K, N], randn(K * N, 22)),
    },
    opsets: { '': 17 },
  });
  const a = randn(2 * K, 23);
  const cases: [SchemeName, Record<string, unknown>][] = [
    ['q4', { format: 'qdq' }],
    ['q4-asym', { format: 'qdq' }],
    ['q4', {}],
    ['q4-asym', {}],
    ['nf4', {}],
    ['int8', {}],
  ];
  for (const [scheme, extra] of cases) {
    it(`${scheme} ${JSON.stringify(extra)}: 'W|T|1' (MatMul) and 'G|x' (Gemm transB) give the outputs of plain names`, async () => {
      const feeds = () => ({ A: new ort.Tensor('float32', a, [2, K]) });
      const plain = quantizeModelBytes(encodeModel(makeModel(spec('W', 'G'))), { scheme, blockSize: 16, ...extra });
      const piped = quantizeModelBytes(encodeModel(makeModel(spec('W|T|1', 'G|x'))), {
        scheme,
        blockSize: 16,
        ...extra,
      });
      expect(piped.report.layers.map((l) => l.scheme)).toEqual([scheme, scheme]);
      expect(await run(piped.bytes, feeds())).toEqual(await run(plain.bytes, feeds()));
    });
  }
});

describe('file size for a model whose weights sit in MatMuls', () => {
  const D = 256;
  const bytes = encodeModel(
    makeModel({
      nodes: [0, 1, 2, 3]
        .map((i) => ({ opType: 'MatMul', inputs: [i === 0 ? 'X' : `h${i}`], outputs: [`h${i + 1}`] }))
        .map((n, i) => ({ ...n, inputs: [...n.inputs, `W${i}`], outputs: i === 3 ? ['Y'] : n.outputs })),
      inputs: [{ name: 'X', dtype: 'float32', dims: [1, D] }],
      outputs: [{ name: 'Y', dtype: 'float32', dims: [1, D] }],
      initializers: Object.fromEntries(
        [0, 1, 2, 3].map((i) => [`W${i}`, makeTensor('float32', [D, D], randn(D * D, 20 + i, 0.05))]),
      ),
    }),
  );
  for (const [scheme, budget] of [
    ['int8', 0.3],
    ['q4', 0.22],
    ['nf4', 0.2],
  ] as [SchemeName, number][]) {
    it(`${scheme} file ≤ ${budget}× of fp32`, async () => {
      const q = quantizeModelBytes(bytes, { scheme });
      expect(q.bytes.length / bytes.length).toBeLessThanOrEqual(budget);
      const y = await run(q.bytes, { X: new ort.Tensor('float32', randn(D, 1), [1, D]) });
      expect(y.every(Number.isFinite)).toBe(true);
    });
  }
});

describe('opset and fp16 edge cases', () => {
  it('int8 on an opset-11 model with Softmax (changed meaning at 13) rewrites it to the opset-13 form and quantizes', () => {
    const K = 4;
    const q = quantizeModelBytes(
      encodeModel(
        makeModel({
          nodes: [
            { opType: 'MatMul', inputs: ['A', 'W'], outputs: ['H'] },
            { opType: 'Softmax', inputs: ['H'], outputs: ['Y'] },
          ],
          inputs: [{ name: 'A', dtype: 'float32', dims: [1, K] }],
          outputs: [{ name: 'Y', dtype: 'float32', dims: [1, K] }],
          initializers: { W: makeTensor('float32', [K, K], randn(K * K, 1)) },
          opsets: { '': 11 },
        }),
      ),
      { scheme: 'int8' },
    );
    // Softmax over the last axis of a 2-D input means the same at 11 and 13 (upgrade-opset.ts).
    expect(q.report.layers[0]).toMatchObject({ scheme: 'int8' });
    expect(q.report.notes.join(' ')).toContain('raised from 11');
  });

  it('int8 on an opset-11 model without such ops raises the opset to 13 and says so', async () => {
    const K = 4;
    const q = quantizeModelBytes(
      encodeModel(
        makeModel({
          nodes: [{ opType: 'MatMul', inputs: ['A', 'W'], outputs: ['Y'] }],
          inputs: [{ name: 'A', dtype: 'float32', dims: [1, K] }],
          outputs: [{ name: 'Y', dtype: 'float32', dims: [1, K] }],
          initializers: { W: makeTensor('float32', [K, K], randn(K * K, 1)) },
          opsets: { '': 11 },
          irVersion: 6,
        }),
      ),
      { scheme: 'int8' },
    );
    expect(q.report.notes.join(' ')).toContain('raised from 11 to 13');
    await run(q.bytes, { A: new ort.Tensor('float32', new Float32Array(K).fill(1), [1, K]) });
  });

  it('fp16: values beyond ±65504 are clamped (not Inf) and listed; graph IO stays fp32', async () => {
    const w = Float32Array.from([1, 2, 1e5, -7e4]);
    const q = quantizeModelBytes(
      encodeModel(
        makeModel({
          nodes: [{ opType: 'Mul', inputs: ['A', 'W'], outputs: ['Y'] }],
          inputs: [{ name: 'A', dtype: 'float32', dims: [4] }],
          outputs: [{ name: 'Y', dtype: 'float32', dims: [4] }],
          initializers: { W: makeTensor('float32', [4], w) },
        }),
      ),
      { scheme: 'fp16' },
    );
    expect(q.report.notes.join(' ')).toContain("'W': 2 values beyond fp16 range clamped");
    const y = await run(q.bytes, { A: new ort.Tensor('float32', Float32Array.from([1, 1, 0.5, 0.5]), [4]) });
    expect([...y]).toEqual([1, 2, 32752, -32752]);
  });
});

import { readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { quantizeFile } from '../src/flows/quantize-file.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { STORE_MIN_ELEMENTS } from '../src/passes/weight-only/other-tensors.js';
import type { SchemeName } from '../src/passes/weight-only/index.js';
import { storageBytes } from '../src/tensor/dtype.js';
import { makeTensor } from '../src/tensor/tensor.js';

/*
 * Storage schemes (bf16, fp8, fp8-e5m2, int8) store every float initializer of STORE_MIN_ELEMENTS
 * elements or more, whatever op reads it (passes/weight-only/other-tensors.ts), and the report
 * lists what was converted and what was kept, and why.
 */

const STORAGE: SchemeName[] = ['bf16', 'fp8', 'fp8-e5m2', 'int8'];
const at = (p: string) => new URL(`../${p}`, import.meta.url).pathname;
const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1);
}

/** round half to even, as ONNX QuantizeLinear / ORT's quantizer round. */
function rne(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/*
 * X [4, 64] plus:  P [16, 64] through Slice (rows 0..3) — a positional table;  M [32, 64] holding
 * −Inf, Slice'd and added — an additive mask;  E [32, 32] read by Cast to int32 (must stay exact);
 * Z [32, 64] read by Add with the small bias B [64].
 */
const P = values(16 * 64, 1);
const M = values(32 * 64, 2).map((v, i) => (i % 7 === 0 ? -Infinity : v));
const E = values(32 * 32, 3).map((v) => Math.round(v * 50));
const Z = values(32 * 64, 4);
const B = values(64, 5);
const X = values(4 * 64, 6);
const i64 = (v: number[]) => makeTensor('int64', [v.length], BigInt64Array.from(v.map(BigInt)));
const fixture = encodeModel(
  makeModel({
    nodes: [
      { opType: 'Slice', inputs: ['P', 'starts', 'ends', 'axes'], outputs: ['p4'], name: 'slice_p' },
      { opType: 'Add', inputs: ['X', 'p4'], outputs: ['out_p'], name: 'add_p' },
      { opType: 'Slice', inputs: ['M', 'starts', 'ends', 'axes'], outputs: ['m4'], name: 'slice_m' },
      { opType: 'Add', inputs: ['X', 'm4'], outputs: ['out_m'], name: 'add_m' },
      { opType: 'Cast', inputs: ['E'], outputs: ['out_e'], name: 'cast_e', attributes: { to: 6 } },
      { opType: 'Add', inputs: ['Z', 'B'], outputs: ['out_z'], name: 'add_z' },
    ],
    inputs: [{ name: 'X', dtype: 'float32', dims: [4, 64] }],
    outputs: [
      { name: 'out_p', dtype: 'float32', dims: [4, 64] },
      { name: 'out_m', dtype: 'float32', dims: [4, 64] },
      { name: 'out_e', dtype: 'int32', dims: [32, 32] },
      { name: 'out_z', dtype: 'float32', dims: [32, 64] },
    ],
    initializers: {
      P: makeTensor('float32', [16, 64], P),
      M: makeTensor('float32', [32, 64], M),
      E: makeTensor('float32', [32, 32], E),
      Z: makeTensor('float32', [32, 64], Z),
      B: makeTensor('float32', [64], B),
      starts: i64([0]),
      ends: i64([4]),
      axes: i64([0]),
    },
    opsets: { '': 17 },
  }),
);

async function runAll(bytes: Uint8Array): Promise<Record<string, Float32Array | Int32Array>> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ X: new ort.Tensor('float32', X, [4, 64]) });
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array | Int32Array]));
}

describe('storage schemes convert float tensors outside weight inputs', () => {
  for (const scheme of STORAGE) {
    it(`${scheme}: the Slice'd table is converted; the mask, the Cast input, the --exclude'd tensor and the small bias are kept, each with its reason; ORT runs it`, async () => {
      const q = quantizeModelBytes(fixture, { scheme, exclude: ['Z'] });
      const row = (w: string) => q.report.layers.find((l) => l.weight === w);
      expect(row('P')?.scheme).toBe(scheme);
      expect(row('P')?.opTypes).toEqual(['Slice']);
      expect(row('P')?.bytesAfter).toBe(scheme === 'bf16' ? 2 * P.length : P.length + 4 * 16);
      if (scheme === 'bf16')
        expect(row('M')?.scheme).toBe('bf16'); // bfloat16 has −Inf
      else expect(row('M')?.note).toMatch(/Inf\/NaN/);
      expect(row('E')?.scheme).toBe('fp32');
      expect(row('E')?.note).toMatch(/Cast cast_e/);
      expect(row('Z')?.note).toBe('excluded (`exclude` Z)'); // the library's words; the CLI prints --exclude
      expect(row('B')).toBeUndefined();
      expect(q.report.notes.join('\n')).toMatch(/kept fp32: 1 float tensor under 1024 elements .*: B$/m);
      expect(q.report.totals.skippedLayers).toBe(scheme === 'bf16' ? 2 : 3);

      const got = await runAll(q.bytes);
      const ref = await runAll(fixture);
      expect(got.out_e).toEqual(ref.out_e);
      expect(got.out_z).toEqual(ref.out_z);
      // The stored table, decoded by hand, is what ORT added.
      const back = new Float32Array(4 * 64);
      for (let r = 0; r < 4; r++) {
        let m = 0;
        for (let j = 0; j < 64; j++) m = Math.max(m, Math.abs(P[r * 64 + j] as number));
        const s = Math.fround(m / 127);
        for (let j = 0; j < 64; j++) {
          const v = P[r * 64 + j] as number;
          back[r * 64 + j] = scheme === 'int8' ? Math.fround(rne(Math.fround(v / s)) * s) : v;
        }
      }
      const outP = got.out_p as Float32Array;
      for (let i = 0; i < back.length; i++) {
        const want = Math.fround((X[i] as number) + (back[i] as number));
        // int8: exact; bf16 / fp8: the format's relative precision (2^-8, 2^-3 for e5m2).
        const tol =
          scheme === 'int8'
            ? 0
            : (scheme === 'fp8-e5m2' ? 2 ** -3 : scheme === 'fp8' ? 2 ** -4 : 2 ** -8) * Math.abs(P[i] as number) +
              1e-7;
        expect(Math.abs((outP[i] as number) - want)).toBeLessThanOrEqual(tol);
      }
    });
  }
});

describe('models/lm.onnx: no float tensor of 1024 elements or more stays fp32', () => {
  const lm = readFileSync(at('models/lm.onnx'));
  const windows = readNpy(readFileSync(at('models/lm-eval.npy')));
  const dir = mkdtempSync(join(tmpdir(), 'qk-store-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the report names the learned positional table (Slice) and the mask; bf16 weights are half of every large float tensor; file ≤ 0.511×', async () => {
    const out = join(dir, 'bf16.onnx');
    const r = await quantizeFile(at('models/lm.onnx'), out, { scheme: 'bf16' });
    expect(r.report.layers.find((l) => l.weight === 'pos')?.opTypes).toEqual(['Slice']);
    expect(r.report.layers.find((l) => l.weight === 'pos')?.scheme).toBe('bf16');
    expect(r.report.totals.skippedLayers).toBe(0);
    // Expected bytes from the input alone: every float32 initializer at or above the threshold halves.
    const inModel = modelFromProto(decodeModel(lm));
    let expected = 0;
    let small = 0;
    for (const init of inModel.graph.initializers.values()) {
      const n = count(init.dims);
      const big = init.dtype === 'float32' && n >= STORE_MIN_ELEMENTS;
      if (init.dtype === 'float32' && !big) small++;
      expected += big ? 2 * n : storageBytes(init.dtype, n);
    }
    expect(r.report.totals.bytesAfter).toBe(expected);
    expect(r.report.notes.join('\n')).toContain(
      `kept fp32: ${small} float tensors under ${STORE_MIN_ELEMENTS} elements`,
    );
    const ratio = statSync(out).size / lm.length;
    console.log(`lm.onnx bf16: file ${statSync(out).size} / ${lm.length} B = ${ratio.toFixed(4)}×`);
    expect(ratio).toBeLessThanOrEqual(0.511);
  });

  for (const scheme of STORAGE) {
    it(`${scheme}: only float tensors under ${STORE_MIN_ELEMENTS} elements remain float32; perplexity within the scheme's budget`, async () => {
      const q = quantizeModelBytes(lm, { scheme });
      const model = modelFromProto(decodeModel(q.bytes));
      const left = [...model.graph.initializers.values()].filter(
        (i) => i.dtype === 'float32' && count(i.dims) >= STORE_MIN_ELEMENTS,
      );
      // int8/fp8 scales are float32 vectors of one per row: at most 512 here, under the threshold.
      expect(left.map((i) => i.name)).toEqual([]);
      const base = (await lmPerplexity(lm, windows)).perplexity;
      const p = (await lmPerplexity(q.bytes, windows)).perplexity;
      expect(p / base - 1).toBeLessThanOrEqual(scheme === 'int8' ? 0.005 : 0.1);
    });
  }
});

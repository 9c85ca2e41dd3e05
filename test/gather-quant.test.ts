import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { lmPerplexity } from '../src/flows/evaluate-node.js';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import type { Model } from '../src/graph/model.js';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { readNpy } from '../src/io/npy/npy.js';
import type { SchemeName } from '../src/passes/weight-only/index.js';
import { sqnrDb } from '../src/quant/metrics.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { randn } from './helpers/random.js';

/*
 * Embedding tables (Gather on an fp32 initializer) under the 4-bit schemes: the layout of
 * com.microsoft GatherBlockQuantized is pinned against ONNX Runtime itself — its output must equal
 * the rows of the stored table as this test decodes it by hand from the file (uint8 codes packed
 * along d, low nibble first; scales [vocab, ceil(d / block)]; zero points packed the same way,
 * absent → 8) — then the project's LMs are run.
 */

const VOCAB = 100;
const IDS = BigInt64Array.from([0n, 7n, 99n, 42n, 7n, -1n, 13n, 58n]);

function gatherModel(d: number, table: Float32Array, tiedHead = false): Uint8Array {
  const nodes = [{ opType: 'Gather', inputs: ['emb', 'ids'], outputs: ['E'], name: 'embed', attributes: { axis: 0 } }];
  const outputs = [{ name: 'E', dtype: 'float32' as const, dims: [IDS.length, d] }];
  if (tiedHead) {
    nodes.push({
      opType: 'Gemm',
      inputs: ['E', 'emb'],
      outputs: ['L'],
      name: 'lm_head',
      attributes: { transB: 1 } as never,
    });
    outputs.push({ name: 'L', dtype: 'float32', dims: [IDS.length, VOCAB] });
  }
  return encodeModel(
    makeModel({
      nodes,
      inputs: [{ name: 'ids', dtype: 'int64', dims: [IDS.length] }],
      outputs,
      initializers: { emb: makeTensor('float32', [VOCAB, d], table) },
      opsets: { '': 17 },
    }),
  );
}

async function runAll(bytes: Uint8Array): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ ids: new ort.Tensor('int64', IDS, [IDS.length]) });
  return s.outputNames.map((n) => out[n]!.data as Float32Array);
}

function initializerData(model: Model, name: string): Tensor['data'] {
  const init = model.graph.initializers.get(name);
  if (!init) throw new Error(`no initializer ${name}`);
  return init.load().data;
}

/** The table as GatherBlockQuantized(uint8, bits 4) defines it, decoded from the file by hand. */
function decodeStoredTable(model: Model, d: number, block: number): Float32Array {
  const g = model.graph.nodes.find((n) => n.opType === 'GatherBlockQuantized');
  if (!g) throw new Error('no GatherBlockQuantized');
  let dataName = g.inputs[0] as string;
  const reshape = model.graph.nodes.find((n) => n.outputs[0] === dataName);
  if (reshape) dataName = reshape.inputs[0] as string; // shared with MatMulNBits: same bytes
  const data = initializerData(model, dataName) as Uint8Array;
  const scales = initializerData(model, g.inputs[2] as string) as Float32Array;
  const zps = g.inputs[3] ? (initializerData(model, g.inputs[3]) as Uint8Array) : undefined;
  const blocks = Math.ceil(d / block);
  expect(data.length).toBe((VOCAB * d) / 2);
  expect(scales.length).toBe(VOCAB * blocks);
  const zpRow = Math.ceil(blocks / 2);
  const out = new Float32Array(VOCAB * d);
  for (let r = 0; r < VOCAB; r++) {
    for (let k = 0; k < d; k++) {
      const i = r * d + k;
      const code = ((data[i >> 1] as number) >> ((i & 1) * 4)) & 15;
      const b = Math.floor(k / block);
      const zp = zps ? ((zps[r * zpRow + (b >> 1)] as number) >> ((b & 1) * 4)) & 15 : 8;
      out[i] = Math.fround((code - zp) * (scales[r * blocks + b] as number));
    }
  }
  return out;
}

function gatherRows(table: Float32Array, d: number): Float32Array {
  const out = new Float32Array(IDS.length * d);
  IDS.forEach((id, j) => {
    const r = Number(id < 0n ? id + BigInt(VOCAB) : id);
    out.set(table.subarray(r * d, (r + 1) * d), j * d);
  });
  return out;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m / scale;
}

describe('GatherBlockQuantized layout: ONNX Runtime returns the rows of the table we stored', () => {
  // d 64: whole blocks of 32; d 40: one whole block and a partial one of 8.
  for (const d of [64, 40]) {
    const table = randn(VOCAB * d, d);
    table[3 * d + 5] = 6; // an outlier in row 3
    for (const scheme of ['q4', 'q4-asym'] as const) {
      it(`${scheme}, vocab ${VOCAB} × d ${d}, block 32: ORT output = our decoding of the stored table (1e-6 relative)`, async () => {
        const q = quantizeModelBytes(gatherModel(d, table), { scheme, quantizeEmbeddings: true });
        const model = modelFromProto(decodeModel(q.bytes));
        const g = model.graph.nodes.find((n) => n.name === 'embed');
        expect(g?.opType).toBe('GatherBlockQuantized');
        expect(g?.domain).toBe('com.microsoft');
        expect(model.graph.initializers.has('emb')).toBe(false);
        const stored = decodeStoredTable(model, d, 32);
        const [got] = await runAll(q.bytes);
        expect(maxRelDiff(got as Float32Array, gatherRows(stored, d))).toBeLessThan(1e-6);
        // The reported SQNR is that of the stored table (hand-decoded) against the original.
        const layer = q.report.layers[0]!;
        expect(layer.form).toMatch(/^GatherBlockQuantized\(bits=4, block=32/);
        expect(layer.sqnrDb).toBeCloseTo(sqnrDb(table, stored), 2);
        // 4-bit on Gaussian data: ~20 dB (6 dB per bit less the clipping/rounding of small blocks).
        expect(layer.sqnrDb).toBeGreaterThan(17);
        // d/2 bytes of codes + 4 bytes per block (+ 1/2 byte of zero point), vs 4·d.
        const blocks = Math.ceil(d / 32);
        expect(layer.bytesAfter).toBe(
          VOCAB * (d / 2 + 4 * blocks + (scheme === 'q4-asym' ? Math.ceil(blocks / 2) : 0)),
        );
      });
    }
  }

  it('q8-block: bits 8 (one code per byte, default zero point 128)', async () => {
    const d = 40;
    const table = randn(VOCAB * d, 5);
    const q = quantizeModelBytes(gatherModel(d, table), { scheme: 'q8-block', quantizeEmbeddings: true });
    const model = modelFromProto(decodeModel(q.bytes));
    const g = model.graph.nodes[0]!;
    expect(g.opType).toBe('GatherBlockQuantized');
    const data = initializerData(model, g.inputs[0] as string) as Uint8Array;
    const scales = initializerData(model, g.inputs[2] as string) as Float32Array;
    const stored = Float32Array.from(data, (c, i) =>
      Math.fround((c - 128) * (scales[Math.floor(i / d) * 2 + Math.floor((i % d) / 32)] as number)),
    );
    const [got] = await runAll(q.bytes);
    expect(maxRelDiff(got as Float32Array, gatherRows(stored, d))).toBeLessThan(1e-6);
    expect(q.report.layers[0]!.sqnrDb).toBeGreaterThan(40);
  });

  for (const scheme of ['nf4', 'fp4'] as const) {
    it(`${scheme}: no codebook Gather in ONNX Runtime → int8 rows + DequantizeLinear(axis 0), said in the form`, async () => {
      const d = 40;
      const table = randn(VOCAB * d, 9);
      const q = quantizeModelBytes(gatherModel(d, table), { scheme, quantizeEmbeddings: true });
      const model = modelFromProto(decodeModel(q.bytes));
      expect(model.graph.nodes.map((n) => n.opType)).toEqual(['DequantizeLinear', 'Gather']);
      const layer = q.report.layers[0]!;
      expect(layer.form).toContain(`int8 rows (ONNX Runtime has no ${scheme} Gather)`);
      const [got] = await runAll(q.bytes);
      expect(maxRelDiff(got as Float32Array, gatherRows(table, d))).toBeLessThan(0.02); // ≤ scale/2 of 127 steps
    });
  }

  it('without quantizeEmbeddings the table stays fp32 and the report says how to change that', () => {
    for (const scheme of ['q4', 'nf4'] as const) {
      const q = quantizeModelBytes(gatherModel(64, randn(VOCAB * 64, 5)), { scheme });
      expect(q.report.layers[0]!.scheme).toBe('fp32');
      expect(q.report.layers[0]!.note).toMatch(/`quantizeEmbeddings`/); // the CLI prints it as --quantize-embeddings
    }
  });

  it('an odd width, an axis-1 Gather and --exclude Gather stay fp32 with the reason', () => {
    const odd = quantizeModelBytes(gatherModel(33, randn(VOCAB * 33, 3)), { scheme: 'q4', quantizeEmbeddings: true });
    expect(odd.report.layers[0]!.scheme).toBe('fp32');
    expect(odd.report.layers[0]!.note).toMatch(/width 33 is odd/);
    const ex = quantizeModelBytes(gatherModel(64, randn(VOCAB * 64, 3)), {
      scheme: 'q4',
      exclude: ['Gather'],
      quantizeEmbeddings: true,
    });
    expect(ex.report.layers[0]!.scheme).toBe('fp32');
    const axis1 = encodeModel(
      makeModel({
        nodes: [{ opType: 'Gather', inputs: ['emb', 'ids'], outputs: ['E'], name: 'g', attributes: { axis: 1 } }],
        inputs: [{ name: 'ids', dtype: 'int64', dims: [2] }],
        outputs: [{ name: 'E', dtype: 'float32', dims: [VOCAB, 2] }],
        initializers: { emb: makeTensor('float32', [VOCAB, 64], randn(VOCAB * 64, 4)) },
        opsets: { '': 17 },
      }),
    );
    expect(quantizeModelBytes(axis1, { scheme: 'q4', quantizeEmbeddings: true }).report.layers[0]!.note).toMatch(
      /axis other than 0/,
    );
  });
});

describe('tied embedding + Gemm(transB=1) head', () => {
  it('q4: MatMulNBits for the head, int8 rows + DequantizeLinear for the Gather; reported once with both forms', async () => {
    const d = 64;
    const table = randn(VOCAB * d, 11);
    const q = quantizeModelBytes(gatherModel(d, table, true), { scheme: 'q4', quantizeEmbeddings: true });
    const model = modelFromProto(decodeModel(q.bytes));
    expect(model.graph.nodes.map((n) => n.opType).sort()).toEqual(['DequantizeLinear', 'Gather', 'MatMulNBits']);
    expect(model.graph.initializers.has('emb')).toBe(false);
    expect(q.report.layers).toHaveLength(1);
    const layer = q.report.layers[0]!;
    expect(layer.form).toBe('MatMulNBits(bits=4, block=32) + DequantizeLinear(axis=0) int8 rows (tied embedding)');
    expect(layer.bytesAfter).toBe(VOCAB * (2 * 16 + 4 * 2) + VOCAB * (d + 4));
    // The Gather's rows are the int8 table: within half a step (max|row| / 254) of the original.
    const [emb] = await runAll(q.bytes);
    const rows = gatherRows(table, d);
    for (let i = 0; i < IDS.length; i++) {
      let m = 0;
      for (let k = 0; k < d; k++) m = Math.max(m, Math.abs(rows[i * d + k] as number));
      for (let k = 0; k < d; k++)
        expect(Math.abs((emb![i * d + k] as number) - (rows[i * d + k] as number))).toBeLessThanOrEqual(
          (m / 127) * 0.5 * (1 + 1e-6),
        );
    }
  });
});

const root = (p: string) => new URL(`../${p}`, import.meta.url).pathname;

describe('LMs whose token embedding is a Gather', () => {
  const lm = readFileSync(root('models/lm.onnx'));
  const windows = readNpy(readFileSync(root('models/lm-eval.npy')));
  let base = 0;
  beforeAll(async () => {
    base = (await lmPerplexity(lm, windows)).perplexity;
  });

  it('models/lm.onnx q4: tok.weight is GatherBlockQuantized, perplexity ≤ +3 % of fp32, file smaller than with the embedding kept fp32', async () => {
    const q = quantizeModelBytes(lm, { scheme: 'q4', quantizeEmbeddings: true });
    const tok = q.report.layers.find((l) => l.weight === 'tok.weight');
    expect(tok?.form).toMatch(/GatherBlockQuantized/);
    const old = quantizeModelBytes(lm, { scheme: 'q4', exclude: ['Gather'], quantizeEmbeddings: true });
    expect(q.bytes.length).toBeLessThan(old.bytes.length);
    const p = (await lmPerplexity(q.bytes, windows)).perplexity;
    console.log(
      `lm.onnx: fp32 ${lm.length} B ppl ${base.toFixed(4)}; q4 (Gather fp32) ${old.bytes.length} B; q4 (Gather q4) ${q.bytes.length} B ppl ${p.toFixed(4)} (+${((p / base - 1) * 100).toFixed(2)} %); tok.weight SQNR ${tok?.sqnrDb?.toFixed(2)} dB`,
    );
    expect(p).toBeLessThanOrEqual(base * 1.03);
  });

  // Data-free nf4 stores plain absmax constants (bnb4-handler.ts dataFreeSearch), +5.9 % on this
  // model with the embedding kept fp32; int8 embedding rows add ~0.1 % to that.
  const budget: Record<string, number> = { q4: 0.05, 'q4-asym': 0.05, nf4: 0.065 };
  for (const scheme of ['q4', 'q4-asym', 'nf4'] as SchemeName[]) {
    it(`lm-gemm-tied.onnx ${scheme}: tied head and embedding both quantized, runs, perplexity ≤ +${(budget[scheme] as number) * 100} % (fp32-embedding q4 was +2.9 %)`, async () => {
      const tied = readFileSync(root('test/fixtures/variants/lm-gemm-tied.onnx'));
      const ev = readNpy(readFileSync(root('test/fixtures/variants/lm-gemm-tied-eval.npy')));
      const b = (await lmPerplexity(tied, ev)).perplexity;
      const q = quantizeModelBytes(tied, { scheme, quantizeEmbeddings: true });
      const emb = q.report.layers.find((l) => l.opTypes.includes('Gather'));
      expect(emb?.opTypes).toEqual(expect.arrayContaining(['Gather', 'Gemm']));
      expect(emb?.form).toContain('DequantizeLinear(axis=0) int8 rows');
      const p = (await lmPerplexity(q.bytes, ev)).perplexity;
      console.log(
        `lm-gemm-tied ${scheme}: fp32 ${tied.length} B ppl ${b.toFixed(4)} → ${q.bytes.length} B ppl ${p.toFixed(4)}; embedding form: ${emb?.form}`,
      );
      expect(p).toBeLessThanOrEqual(b * (1 + (budget[scheme] as number)));
    });
  }
});

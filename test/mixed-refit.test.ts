import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSession } from '../src/flows/evaluate-node.js';
import { quantizeModelBytesGptq } from '../src/flows/gptq.js';
import { nodeMixedHooks, quantizeMixedFile } from '../src/flows/mixed-file.js';
import {
  parseCandidate,
  planModel,
  prepareMixed,
  refitModel,
  trueLinearBits,
  type Candidate,
} from '../src/flows/mixed.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { readNpy } from '../src/io/npy/npy.js';
import { nodeRuntime } from '../src/node/ort-runtime.js';

/*
 * The written mixed model refitted (flows/mixed.ts refitModel): one sequential GPTQ pass in which
 * every weight takes its planned form on top of the layers before it in theirs. On the Gemm/tied
 * LM variant (12 linear weights in 9 stages; its head is tied to the embedding, so it stays out of
 * every plan and fp32).
 */

const path = (p: string) => new URL(p, import.meta.url).pathname;
const modelPath = path('fixtures/variants/lm-gemm-tied.onnx');
const calibPath = path('fixtures/variants/lm-gemm-tied-calib.npy');
const bytes = readFileSync(modelPath);
const data = new Map([['input_ids', readNpy(readFileSync(calibPath))]]);
const TIED = 'tok.weight';
const blockWeights = (b: number) =>
  ['attn.q', 'attn.k', 'attn.v', 'attn.o', 'fc1', 'fc2'].map((n) => `blocks.${b}.${n}.weight`);
const LINEAR = [...blockWeights(0), ...blockWeights(1)];

/** Every initializer of a written model by name, as bytes. */
function initializers(model: Uint8Array): Map<string, Uint8Array> {
  const m = modelFromProto(decodeModel(model));
  const out = new Map<string, Uint8Array>();
  for (const [name, init] of m.graph.initializers) {
    const d = init.load().data as ArrayLike<number> & {
      buffer: ArrayBufferLike;
      byteOffset: number;
      byteLength: number;
    };
    out.set(name, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return out;
}

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined) =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);

/** The initializers holding weight `w`'s quantized form (MatMulNBits' B, scales, zero points). */
const formOf = (inits: Map<string, Uint8Array>, w: string) => [...inits.keys()].filter((n) => n.startsWith(`${w}_`));

describe('refitted mixed model (refitModel, lm-gemm-tied)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-refit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a plan of one +gptq candidate refits to the bytes the GPTQ flow writes for that scheme', async () => {
    const c = parseCandidate('q4:64+gptq');
    const setup = await prepareMixed(bytes, [c], { candidateRuns: false }, nodeMixedHooks(data));
    const refit = await refitModel(setup, new Map(LINEAR.map((w) => [w, c])));
    const gptq = await quantizeModelBytesGptq(bytes, { scheme: 'q4', blockSize: 64, exclude: [TIED] }, data);
    expect(gptq.report.layers.filter((l) => l.form.includes('gptq')).map((l) => l.weight)).toEqual(LINEAR);
    expect(refit.layers.filter((l) => l.form.includes('gptq')).length).toBe(LINEAR.length);
    expect(Buffer.from(refit.bytes).equals(Buffer.from(gptq.bytes))).toBe(true);
  });

  it('a two-scheme plan with a data-free layer: same forms and sizes as assembled, refitted downstream, and ORT runs it', async () => {
    const [q2, q4, q8] = ['q2-asym:64+gptq', 'q4:64+gptq', 'q8-block:128'].map(parseCandidate) as [
      Candidate,
      Candidate,
      Candidate,
    ];
    const plan = new Map<string, Candidate>([
      ...blockWeights(0).map((w): [string, Candidate] => [w, q2]),
      ...blockWeights(1).map((w): [string, Candidate] => [w, q4]),
    ]);
    plan.set('blocks.0.attn.v.weight', q8);
    const setup = await prepareMixed(bytes, [q2, q4, q8], {}, nodeMixedHooks(data));
    const assembled = planModel(setup, plan);
    const refit = await refitModel(setup, plan);
    // The same form per weight: scheme and true bytes as planned, whichever way it was fitted.
    const byWeight = (ls: typeof refit.layers) => new Map(ls.map((l) => [l.weight, l]));
    const [a, r] = [byWeight(assembled.layers), byWeight(refit.layers)];
    for (const [w, c] of plan) {
      expect(r.get(w)?.scheme).toBe(c.scheme);
      expect(r.get(w)?.form).toBe(a.get(w)?.form);
      expect(r.get(w)?.form.includes('gptq')).toBe(c.gptq === true);
      expect(r.get(w)?.trueBytes ?? r.get(w)?.bytesAfter).toBe(a.get(w)?.trueBytes ?? a.get(w)?.bytesAfter);
    }
    expect(trueLinearBits(refit.layers)).toBe(trueLinearBits(assembled.layers));
    const [ia, ir] = [initializers(assembled.bytes), initializers(refit.bytes)];
    expect([...ir.keys()].sort()).toEqual([...ia.keys()].sort());
    // Nothing upstream of the first stage (q, k) and no data-free form depends on the fitting...
    for (const w of ['blocks.0.attn.q.weight', 'blocks.0.attn.k.weight', 'blocks.0.attn.v.weight']) {
      expect(formOf(ir, w).length).toBeGreaterThan(0);
      for (const n of formOf(ir, w)) expect(same(ir.get(n), ia.get(n))).toBe(true);
    }
    // ... every later weight was fitted on upstream layers that are not its own candidate's run's:
    // attn.o sees v in q8 (not q2), block 1 sees block 0 in q2 (not q4).
    for (const w of ['blocks.0.attn.o.weight', ...blockWeights(1)]) {
      expect(formOf(ir, w).length).toBeGreaterThan(0);
      expect(formOf(ir, w).some((n) => !same(ir.get(n), ia.get(n)))).toBe(true);
    }
    // The data-free v is what attn.o's statistics saw: with v left fp32 instead, attn.o comes out otherwise.
    const vFp32 = await refitModel(setup, new Map([...plan, ['blocks.0.attn.v.weight', parseCandidate('fp32')]]));
    const iv = initializers(vFp32.bytes);
    expect(formOf(ir, 'blocks.0.attn.o.weight').some((n) => !same(ir.get(n), iv.get(n)))).toBe(true);
    for (const n of formOf(ir, 'blocks.0.attn.q.weight')) expect(same(ir.get(n), iv.get(n))).toBe(true);
    const session = await openSession(refit.bytes);
    const ids = data.get('input_ids')!;
    const x = nodeRuntime.tensor('int64', (ids.data as BigInt64Array).subarray(0, 4 * 64), [4, 64]);
    const out = await session.run({ [session.inputNames[0]!]: x });
    await session.release();
    const logits = out[session.outputNames[0]!]!.data as Float32Array;
    expect(logits.length).toBe(4 * 64 * 256);
    expect(logits.every(Number.isFinite)).toBe(true);
  });

  it('quantize --target-bits writes the refitted plan within the budget, the same sizes as --no-refit', async () => {
    const run = (refit: boolean) =>
      quantizeMixedFile(modelPath, join(dir, `mixed-${refit}.onnx`), {
        calib: [calibPath],
        schemes: ['q2-asym:64+gptq', 'q4:64+gptq'],
        targetBits: 3.25,
        refineRounds: 0,
        guard: false,
        refit,
      });
    const [r, a] = [await run(true), await run(false)];
    expect(new Set([...r.plan.choice.values()].map((c) => c.label)).size).toBe(2); // 3.25 bits needs both
    expect(r.notes.some((n) => n.startsWith('refitted'))).toBe(true);
    expect(a.notes.some((n) => n.startsWith('refitted'))).toBe(false);
    expect(trueLinearBits(r.layers)).toBeLessThanOrEqual(3.25);
    expect(trueLinearBits(r.layers)).toBe(trueLinearBits(a.layers));
    expect((trueLinearBits(r.layers) * r.plan.params) / 8).toBeCloseTo(r.plan.bytes, 6);
    expect(readFileSync(join(dir, 'mixed-true.onnx')).equals(readFileSync(join(dir, 'mixed-false.onnx')))).toBe(false);
  });
});

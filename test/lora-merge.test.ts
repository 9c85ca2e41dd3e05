import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { quantizeModel } from '../src/flows/quantize.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { encodeSafetensors, readSafetensorsHeader } from '../src/io/safetensors/index.js';
import { bytesSource } from '../src/io/source.js';
import { adapterTensors, loraTargets, mergeLora, peftKey, type LoraAdapter } from '../src/passes/lora.js';
import { mulberry32 } from '../src/quant/prng.js';
import { makeTensor } from '../src/tensor/tensor.js';

const rand = (n: number, seed: number, s = 1) => {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => s * (r() - 0.5));
};

async function runOrt(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ [s.inputNames[0] as string]: new ort.Tensor('float32', x, dims) });
  return out[s.outputNames[0] as string]!.data as Float32Array;
}

describe('LoRA adapters: targets, PEFT names, merge', () => {
  it('lm.onnx: the square projections (q, k, v, o of both blocks) by their node paths; with the MLP also fc1/fc2, never the head', () => {
    const model = modelFromProto(decodeModel(readFileSync('models/lm.onnx'), 'lm'), { label: 'lm' });
    const t = loraTargets(model);
    expect(t.map((x) => x.module)).toEqual([
      'blocks.0.attn.q',
      'blocks.0.attn.k',
      'blocks.0.attn.v',
      'blocks.0.attn.o',
      'blocks.1.attn.q',
      'blocks.1.attn.k',
      'blocks.1.attn.v',
      'blocks.1.attn.o',
    ]);
    const withMlp = loraTargets(model, { mlp: true });
    expect(withMlp).toHaveLength(12);
    expect(withMlp.find((x) => x.module === 'blocks.0.fc1')).toMatchObject({ inFeatures: 128, outFeatures: 512 });
    expect(withMlp.some((x) => x.module === 'head')).toBe(false);
  });

  for (const op of ['MatMul', 'Gemm'] as const) {
    it(`${op}: the merged weight's output in ORT is x·W + (α/r)·(x·Aᵀ)·Bᵀ; re-quantized to nf4 it still runs`, async () => {
      const [M, I, O, r, alpha] = [3, 16, 24, 4, 8];
      const W = rand(I * O, 1);
      const model = modelFromProto(
        makeModel({
          nodes: [
            op === 'MatMul'
              ? { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'], name: '/proj/MatMul' }
              : { opType: 'Gemm', inputs: ['x', 'W'], outputs: ['y'], name: '/proj/Gemm', attributes: { transB: 1 } },
            { opType: 'MatMul', inputs: ['y', 'H'], outputs: ['z'], name: '/head/MatMul' },
          ],
          inputs: [{ name: 'x', dtype: 'float32', dims: [M, I] }],
          outputs: [{ name: 'z', dtype: 'float32', dims: [M, O] }],
          initializers: {
            // Gemm transB reads W as [out, in]: the same values, transposed.
            W: makeTensor('float32', op === 'MatMul' ? [I, O] : [O, I], W),
            H: makeTensor(
              'float32',
              [O, O],
              Float32Array.from({ length: O * O }, (_, i) => (i % (O + 1) === 0 ? 1 : 0)),
            ),
          },
          opsets: { '': 17 },
        }),
      );
      const targets = loraTargets(model, { mlp: true });
      expect(targets.map((t) => t.module)).toEqual(['proj']);
      const adapter: LoraAdapter = { A: rand(r * I, 2), B: rand(O * r, 3) };
      const x = rand(M * I, 4);
      const base = await runOrt(encodeModel(modelToProto(model)), x, [M, I]);
      mergeLora(model, targets, new Map([['W', adapter]]), r, alpha / r);
      const merged = await runOrt(encodeModel(modelToProto(model)), x, [M, I]);
      for (let m = 0; m < M; m++)
        for (let o = 0; o < O; o++) {
          let lora = 0;
          for (let j = 0; j < r; j++) {
            let xa = 0;
            for (let i = 0; i < I; i++) xa += x[m * I + i]! * adapter.A[j * I + i]!;
            lora += xa * adapter.B[o * r + j]!;
          }
          expect(merged[m * O + o]).toBeCloseTo(base[m * O + o]! + (alpha / r) * lora, 4);
        }
      const q = quantizeModel(model, { scheme: 'nf4' });
      expect(q.report.totals.quantizedLayers).toBeGreaterThan(0);
      expect((await runOrt(encodeModel(modelToProto(q.model)), x, [M, I])).length).toBe(M * O);
    });
  }

  it('adapters as safetensors under PEFT names: lora_A [r, in], lora_B [out, r]', () => {
    const model = modelFromProto(decodeModel(readFileSync('models/lm.onnx'), 'lm'), { label: 'lm' });
    const targets = loraTargets(model);
    const adapters = new Map(
      targets.map((t, k) => [t.weight, { A: rand(8 * t.inFeatures, k), B: new Float32Array(t.outFeatures * 8) }]),
    );
    const bytes = encodeSafetensors(adapterTensors(targets, adapters, 8), { format: 'pt' });
    const h = readSafetensorsHeader(bytesSource(bytes, 'adapter.safetensors'));
    const q = h.tensors.find((t) => t.name === peftKey('blocks.0.attn.q', 'A'));
    expect(q?.dims).toEqual([8, 128]);
    expect(h.tensors.find((t) => t.name === peftKey('blocks.1.attn.o', 'B'))?.dims).toEqual([128, 8]);
    expect(h.tensors).toHaveLength(16);
  });

  it('an adapter of the wrong rank is a named error', () => {
    const model = modelFromProto(decodeModel(readFileSync('models/lm.onnx'), 'lm'), { label: 'lm' });
    const t = loraTargets(model).slice(0, 1);
    const bad = new Map([[t[0]!.weight, { A: new Float32Array(10), B: new Float32Array(10) }]]);
    expect(() => mergeLora(model, t, bad, 8, 2)).toThrow(/blocks\.0\.attn\.q.*rank 8/);
  });
});

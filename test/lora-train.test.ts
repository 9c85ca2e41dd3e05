import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isQuantkitError } from '../src/errors.js';
import { lora, mergeAdapterFile, mergeAdapters } from '../src/flows/lora.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import type { Model } from '../src/graph/model.js';
import { memoryInitializer } from '../src/graph/model.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { makeModel } from '../src/io/onnx/build.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { readSafetensorsHeader, readSafetensorsTensor } from '../src/io/safetensors/index.js';
import { bytesSource } from '../src/io/source.js';
import { loraTargets, peftKey } from '../src/passes/lora.js';
import { prepareLora, type LoraBase, type LoraGraph } from '../src/passes/lora-graph.js';
import { dequantizeBlockwise, quantizeBlockwise } from '../src/quant/blockwise.js';
import { NF4_TABLE, nf4Codebook } from '../src/quant/codebook.js';
import { doubleDequantize, doubleQuantize } from '../src/quant/double-quant.js';
import { mulberry32 } from '../src/quant/prng.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { dequantizeFrozenNf4, freezeNf4, frozenNf4Bytes } from '../src/train/nf4-base.js';
import { tf, useBackend } from '../src/train/tf.js';
import { runCli } from './helpers/cli.js';
import { tfjsWasmFolder } from '../src/node/tfjs-wasm.js';

/*
 * LoRA / QLoRA: the adapter branch against a hand-worked example, the NF4 base against its plain
 * dequantization, the merged model in ONNX Runtime against the engine's unmerged forward, the
 * adapter file's names and round trip, and one short CLI run. Perplexities on the new text and
 * the full runs: scripts/measure/qlora.ts.
 */

const lmBytes = readFileSync('models/lm.onnx');
const evalWindows = readNpy(readFileSync('models/kjv/genesis-eval.npy'));
const load = (bytes: Uint8Array): Model => modelFromProto(decodeModel(bytes, 'lm'), { label: 'lm' });
const rows = (t: Tensor, from: number, n: number): Tensor => {
  const per = t.data.length / (t.dims[0] as number);
  return makeTensor(t.dtype, [n, ...t.dims.slice(1)], t.data.slice(from * per, (from + n) * per) as Tensor['data']);
};
/** The model's inputs: the windows without their last id, int32 for the engine, int64 for ORT. */
const inputsOf = (w: Tensor): { i32: Int32Array; i64: BigInt64Array; dims: [number, number] } => {
  const [n, len] = w.dims as [number, number];
  const d = w.data as BigInt64Array;
  const i64 = new BigInt64Array(n * (len - 1));
  for (let r = 0; r < n; r++) i64.set(d.subarray(r * len, r * len + len - 1), r * (len - 1));
  return { i32: Int32Array.from(i64, Number), i64, dims: [n, len - 1] };
};

function setVariable(g: LoraGraph, suffix: string, values: Float32Array): void {
  const v = g.variables().find((x) => x.name.endsWith(suffix));
  if (!v) throw new Error(`no variable ${suffix}`);
  v.assign(tf.tensor(values, v.shape));
}

const wasmPaths = tfjsWasmFolder();

beforeAll(async () => {
  await useBackend('wasm', { wasmPaths });
});

describe('QLoRA base and adapters', () => {
  it('frozen NF4: NF4[code] · double-dequantized absmax, codes packed high nibble first; ≤ 0.16× fp32 bytes', () => {
    const r = mulberry32(3);
    const w = Float32Array.from({ length: 128 * 96 }, () => r() - 0.5);
    const f = freezeNf4(w, 96, 128);
    const q = quantizeBlockwise(w, nf4Codebook(), { blockSize: 64 });
    const want = dequantizeBlockwise({ ...q, absmax: doubleDequantize(doubleQuantize(q.absmax)) }, NF4_TABLE);
    expect(Array.from(dequantizeFrozenNf4(f))).toEqual(Array.from(want));
    expect(f.packed[0]).toBe(((q.codes[0] as number) << 4) | (q.codes[1] as number));
    // 4 bits + 8 bits / 64 + 32 bits / (64·256), plus the mean: QLoRA's 4.127 bits.
    expect(frozenNf4Bytes(f)).toBe(w.length / 2 + w.length / 64 + 4 + 4);
    expect(frozenNf4Bytes(f) / (4 * w.length)).toBeLessThanOrEqual(0.16);
  });

  for (const [op, base] of [
    ['MatMul', 'fp32'],
    ['MatMul', 'nf4'],
    ['Gemm', 'nf4'],
  ] as const) {
    it(`${op}, ${base} base: y = x·W + (α/r)·(x·Aᵀ)·Bᵀ, a hand-worked example; dropout only in training`, () => {
      // x = [1, 2], W = [[1, 0], [−1, 1]] as MatMul reads it (exact in NF4: codes ±1 and 0, absmax 1),
      // r = 1, α = 2: x·W = [−1, 2]; x·Aᵀ = 0.5 − 2 = −1.5; ·Bᵀ = [−3, −1.5]; · α/r = [−6, −3];
      // y = [−7, −1], head → [−7, −1, −8]. Gemm (transB, W stored [out, in]) adds its bias C = [10, 20]:
      // y = [3, 19], head → [3, 19, 22].
      const gemm = op === 'Gemm';
      const model = modelFromProto(
        makeModel({
          nodes: [
            gemm
              ? {
                  opType: 'Gemm',
                  inputs: ['x', 'W', 'C'],
                  outputs: ['y'],
                  name: '/proj/Gemm',
                  attributes: { transB: 1 },
                }
              : { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'], name: '/proj/MatMul' },
            { opType: 'MatMul', inputs: ['y', 'H'], outputs: ['z'], name: '/head/MatMul' },
          ],
          inputs: [{ name: 'x', dtype: 'float32', dims: [1, 2] }],
          outputs: [{ name: 'z', dtype: 'float32', dims: [1, 3] }],
          initializers: {
            W: makeTensor('float32', [2, 2], gemm ? Float32Array.of(1, -1, 0, 1) : Float32Array.of(1, 0, -1, 1)),
            C: makeTensor('float32', [2], Float32Array.of(10, 20)),
            H: makeTensor('float32', [2, 3], Float32Array.of(1, 0, 1, 0, 1, 1)),
          },
          opsets: { '': 17 },
        }),
      );
      const g = prepareLora(model, { rank: 1, alpha: 2, dropout: 0.5, base, seed: 1 });
      try {
        expect(g.targets.map((t) => t.module)).toEqual(['proj']);
        setVariable(g, 'proj.lora_A.T', Float32Array.of(0.5, -1));
        setVariable(g, 'proj.lora_B.T', Float32Array.of(2, 1));
        g.mode = 'eval';
        const x = tf.tensor2d([[1, 2]]);
        expect(Array.from(g.forward({ x }).dataSync())).toEqual(gemm ? [3, 19, 22] : [-7, -1, -8]);
        g.mode = 'train';
        const outs = Array.from({ length: 8 }, () => Array.from(g.forward({ x }).dataSync()).join());
        // Inverted dropout of rate 0.5 on x (2 elements): the branch sees x·{0, 2} per element.
        expect(new Set(outs).size).toBeGreaterThan(1);
        expect(g.adapters().get('W')).toEqual({ A: Float32Array.of(0.5, -1), B: Float32Array.of(2, 1) });
      } finally {
        g.dispose();
      }
    });
  }

  it('errors: no adapted layer names `mlp` as the way out; rank beyond the layer; bad dropout', async () => {
    const noTargets = encodeModel(
      makeModel({
        nodes: [{ opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'], name: '/head/MatMul' }],
        inputs: [{ name: 'x', dtype: 'float32', dims: [1, 4] }],
        outputs: [{ name: 'y', dtype: 'float32', dims: [1, 3] }],
        initializers: { W: makeTensor('float32', [4, 3], new Float32Array(12)) },
        opsets: { '': 17 },
      }),
    );
    const x = { x: rows(evalWindows, 0, 2) };
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        return isQuantkitError(e) ? `${e.code}: ${e.message} (${e.hint})` : String(e);
      }
      return 'ok';
    };
    expect(await code(lora(noTargets, x, { label: 'tiny.onnx' }))).toMatch(
      /^QK_LORA_NO_TARGETS: tiny\.onnx has no MatMul\/Gemm.*`mlp`/,
    );
    expect(await code(lora(lmBytes, x, { rank: 200 }))).toMatch(/^QK_BAD_OPTION: `rank` 200 exceeds .* \(128\)/);
    expect(await code(lora(lmBytes, x, { rank: 0 }))).toMatch(/^QK_BAD_OPTION: `rank` 0 is not a positive integer/);
    expect(await code(lora(lmBytes, x, { dropout: 1 }))).toMatch(/^QK_BAD_OPTION: `dropout` 1 is not in \[0, 1\)/);
  });
});

describe('QLoRA on the char LM', () => {
  const some = rows(evalWindows, 0, 4);
  const inp = inputsOf(some);

  for (const base of ['nf4', 'fp32'] as LoraBase[]) {
    it(`${base} base: the engine's forward equals ORT's on the merged model (W + (α/r)·B·A over the ${base === 'nf4' ? 'dequantized NF4' : 'fp32'} base)`, async () => {
      const g = prepareLora(load(lmBytes), { rank: 4, alpha: 8, dropout: 0.1, mlp: true, base, seed: 2 });
      try {
        const r = mulberry32(9);
        for (const v of g.variables())
          if (v.name.endsWith('lora_B.T'))
            setVariable(
              g,
              v.name.slice(v.name.indexOf('/', 3) + 1),
              Float32Array.from({ length: v.size }, () => 0.05 * (r() - 0.5)),
            );
        g.mode = 'eval';
        const engine = tf.tidy(
          () => g.forward({ input_ids: tf.tensor2d(inp.i32, inp.dims, 'int32') }).dataSync() as Float32Array,
        );
        const fresh = load(lmBytes);
        const merged = mergeAdapters(fresh, loraTargets(fresh, { mlp: true }), g.adapters(), {
          rank: 4,
          alpha: 8,
          base,
          scheme: 'fp32',
        });
        const s = await ort.InferenceSession.create(encodeModel(modelToProto(merged)));
        const out = (await s.run({ input_ids: new ort.Tensor('int64', inp.i64, inp.dims) })).logits!
          .data as Float32Array;
        let worst = 0;
        for (let i = 0; i < out.length; i++)
          worst = Math.max(worst, Math.abs((out[i] as number) - (engine[i] as number)));
        expect(worst).toBeLessThan(2e-4);
        if (base === 'nf4') {
          // The NF4 base is what the forward computes with: the weights it dequantizes, by target.
          const t = g.targets[0]!;
          const w = fresh.graph.initializers.get(t.weight); // merged: base + adapter
          expect(w).toBeDefined();
          const plain = load(lmBytes).graph.initializers.get(t.weight)!.load().data as Float32Array;
          const deq = g.baseWeight(t.weight);
          expect(Array.from(deq)).not.toEqual(Array.from(plain));
          let err = 0;
          for (let i = 0; i < deq.length; i++) err = Math.max(err, Math.abs((deq[i] as number) - (plain[i] as number)));
          expect(err).toBeLessThan(0.2);
          expect(g.baseBytes.held / g.baseBytes.fp32).toBeLessThanOrEqual(0.16);
        }
      } finally {
        g.dispose();
      }
    });
  }

  it('the NF4-base forward equals the forward of the model whose weights are the dequantized NF4 (ORT)', async () => {
    const g = prepareLora(load(lmBytes), { rank: 8, alpha: 16, dropout: 0, base: 'nf4', seed: 0 });
    try {
      g.mode = 'eval';
      const engine = tf.tidy(
        () => g.forward({ input_ids: tf.tensor2d(inp.i32, inp.dims, 'int32') }).dataSync() as Float32Array,
      );
      const plain = load(lmBytes);
      for (const t of g.targets) {
        const init = plain.graph.initializers.get(t.weight)!;
        plain.graph.initializers.set(
          t.weight,
          memoryInitializer(t.weight, makeTensor('float32', [...init.dims], g.baseWeight(t.weight))),
        );
      }
      const s = await ort.InferenceSession.create(encodeModel(modelToProto(plain)));
      const out = (await s.run({ input_ids: new ort.Tensor('int64', inp.i64, inp.dims) })).logits!.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < out.length; i++)
        worst = Math.max(worst, Math.abs((out[i] as number) - (engine[i] as number)));
      expect(worst).toBeLessThan(2e-4);
    } finally {
      g.dispose();
    }
  });

  it('lora(): PEFT-named safetensors that merge back to the same model; re-quantized merges run in ORT', async () => {
    const r = await lora(
      lmBytes,
      { x: rows(readNpy(readFileSync('models/kjv/genesis-train.npy')), 0, 8) },
      {
        rank: 2,
        alpha: 4,
        batchSize: 4,
        maxSteps: 2,
        base: 'nf4',
        merge: 'fp32',
      },
    );
    expect(r.history.steps).toBe(2);
    const src = bytesSource(r.adapter);
    const h = readSafetensorsHeader(src);
    expect(h.metadata).toMatchObject({ r: '2', lora_alpha: '4', base: 'nf4', format: 'pt' });
    const names = r.modules.flatMap((m) => [peftKey(m, 'A'), peftKey(m, 'B')]);
    expect(h.tensors.map((e) => e.name).sort()).toEqual([...names].sort());
    expect(names[0]).toBe('base_model.model.blocks.0.attn.q.lora_A.weight');
    const a = h.tensors.find((e) => e.name === names[0])!;
    const b = h.tensors.find((e) => e.name === names[1])!;
    expect([a.dims, b.dims]).toEqual([
      [2, 128],
      [128, 2],
    ]);
    // Trained B is no longer zero.
    expect((readSafetensorsTensor(src, b).data as Float32Array).some((v) => v !== 0)).toBe(true);
    expect(mergeAdapterFile(lmBytes, r.adapter)).toEqual(r.merged!.bytes);
    for (const scheme of ['nf4', 'q4'] as const) {
      const s = await ort.InferenceSession.create(mergeAdapterFile(lmBytes, r.adapter, { scheme }));
      const out = await s.run({ input_ids: new ort.Tensor('int64', inp.i64, inp.dims) });
      expect(out.logits!.dims).toEqual([4, 64, 77]);
    }
  });
});

describe('quantkit lora', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-lora-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a short run: adapters and a merged model ORT runs, loss in the summary; user errors exit 1 with the way out', () => {
    const ok = runCli([
      'lora',
      'models/lm.onnx',
      '--train',
      'models/kjv/genesis-train.npy',
      '--eval',
      'models/kjv/genesis-eval.npy',
      '--rank',
      '4',
      '--batch',
      '8',
      '--max-steps',
      '2',
      '-o',
      join(dir, 'a.safetensors'),
      '--merge',
      join(dir, 'm.onnx'),
    ]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/QLoRA \(NF4 base, double-quantized constants\), rank 4, α 16: 8 modules/);
    expect(ok.stdout).toMatch(/adapted base weights in memory: 67648 bytes \(fp32: 524288, 0\.1290×/);
    expect(ok.stdout).toMatch(/2 steps, 16 windows .* steps\/s\); last loss \d\.\d{4}/);
    expect(ok.stdout).toMatch(/merged \(fp32\): verified: onnxruntime/);
    expect(ok.stdout).toMatch(/merged model's held-out perplexity in ONNX Runtime: \d+\.\d{4}/);

    const noTrain = runCli(['lora', 'models/lm.onnx', '-o', join(dir, 'b.safetensors')]);
    expect(noTrain.code).toBe(1);
    expect(noTrain.stderr).toMatch(/--train/);
    const rank = runCli([
      'lora',
      'models/lm.onnx',
      '--train',
      'models/kjv/genesis-eval.npy',
      '--rank',
      '0',
      '-o',
      join(dir, 'c.safetensors'),
    ]);
    expect(rank.code).toBe(1);
    expect(rank.stderr).toMatch(/--rank 0 is not a positive integer \(give --rank a positive integer\)/);
    const cnn = runCli([
      'lora',
      'models/cnn.onnx',
      '--train',
      'models/kjv/genesis-eval.npy',
      '-o',
      join(dir, 'd.safetensors'),
    ]);
    expect(cnn.code).toBe(1);
    expect(cnn.stderr).toMatch(/QK_LORA_NO_TARGETS: models\/cnn\.onnx has no MatMul\/Gemm weight .*pass --mlp/);
    const scheme = runCli([
      'lora',
      'models/lm.onnx',
      '--train',
      'models/kjv/genesis-eval.npy',
      '--merge-scheme',
      'q4',
      '-o',
      join(dir, 'e.safetensors'),
    ]);
    expect(scheme.code).toBe(1);
    expect(scheme.stderr).toMatch(/--merge-scheme q4 without --merge \(give --merge out\.onnx/);
  }, 60_000);
});

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeModel, type ModelSpec } from '../io/onnx/build.js';
import { encodeModel } from '../io/onnx/proto.js';
import { planOnnxWrite, tensorToWrite } from '../io/onnx/write.js';
import type { Tensor } from '../tensor/tensor.js';
import { dataFileName, writeOnnxModel } from './model-writer.js';
import { describeVerification, ModelVerificationError, verifyWrittenModel } from './verify-model.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'qk-verify-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const f32 = (dims: number[]): Tensor => ({
  dtype: 'float32',
  dims,
  data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)),
});

function write(name: string, spec: ModelSpec): string {
  const path = join(root, name);
  writeFileSync(path, encodeModel(makeModel(spec)));
  return path;
}

/** An embedding lookup and a projection: token ids in, float logits out. */
const tokenModel = (opset: number, extra: ModelSpec['nodes'] = []): ModelSpec => ({
  nodes: [
    { opType: 'Gather', inputs: ['table', 'ids'], outputs: ['e'] },
    { opType: 'MatMul', inputs: ['e', 'w'], outputs: ['logits'] },
    ...extra,
  ],
  inputs: [{ name: 'ids', dtype: 'int64', dims: ['batch', 'seq'] }],
  outputs: [{ name: 'logits', dtype: 'float32', dims: ['batch', 'seq', 5] }],
  initializers: { table: f32([7, 4]), w: f32([4, 5]) },
  opsets: { '': opset },
});

describe('verifyWrittenModel', () => {
  it('runs a token-id model on zeros with every symbolic dimension 1, and says so', async () => {
    const path = write('ids.onnx', tokenModel(13));
    const v = await verifyWrittenModel({ modelPath: path, step: 'test' });
    expect(v).toMatchObject({
      status: 'verified',
      feeds: [{ name: 'ids', dtype: 'int64', dims: [1, 1], source: 'synthetic' }],
      outputs: ['logits'],
      unreadOutputs: [],
    });
    expect(describeVerification(v)).toMatch(
      /^verified: onnxruntime-node 1\.\d+\.\d+ loaded the model and ran it on zeros of the declared shapes \(ids int64\[1,1\]\)$/,
    );
    expect(existsSync(path)).toBe(true);
  });

  it('feeds the samples it is given', async () => {
    const path = write('ids-samples.onnx', tokenModel(13));
    const ids: Tensor = { dtype: 'int64', dims: [2, 3], data: BigInt64Array.of(1n, 2n, 3n, 4n, 5n, 6n) };
    const v = await verifyWrittenModel({ modelPath: path, step: 'test', samples: new Map([['ids', ids]]) });
    expect(v).toMatchObject({ status: 'verified', feeds: [{ name: 'ids', dims: [2, 3], source: 'sample' }] });
    expect(describeVerification(v)).toContain('the first calibration samples');
  });

  it("an op above the declared opset: deleted, with ONNX Runtime's message naming the op and the step", async () => {
    const path = write(
      'dql9.onnx',
      tokenModel(9, [{ opType: 'DynamicQuantizeLinear', inputs: ['logits'], outputs: ['q', 's', 'z'] }]),
    );
    const err = await verifyWrittenModel({ modelPath: path, step: 'quantize `scheme` int8-dynamic' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelVerificationError);
    expect((err as Error).message).toMatch(
      /cannot load the model written by quantize `scheme` int8-dynamic: .*No Op registered for DynamicQuantizeLinear with domain_version of 9.* — .* was deleted; `verify: false` keeps the file$/s,
    );
    expect(existsSync(path)).toBe(false);
  });

  it('a model that loads but fails at run time: deleted, reported as a run failure', async () => {
    // Reshape to 6 elements: the synthetic [1, 1] ids give 5 logits.
    const path = write('reshape.onnx', {
      ...tokenModel(13, [{ opType: 'Reshape', inputs: ['logits', 'shape'], outputs: ['r'] }]),
      outputs: [{ name: 'r', dtype: 'float32' }],
      initializers: {
        table: f32([7, 4]),
        w: f32([4, 5]),
        shape: { dtype: 'int64', dims: [1], data: BigInt64Array.of(6n) },
      },
    });
    await expect(verifyWrittenModel({ modelPath: path, step: 'test' })).rejects.toThrow(
      /cannot run the model written by test: .*Reshape/,
    );
    expect(existsSync(path)).toBe(false);
  });

  it("external data: loaded from the model's path (the data found next to it); on failure both files are deleted", async () => {
    for (const broken of [false, true]) {
      const modelPath = join(root, `ext-${broken}.onnx`);
      const spec = tokenModel(
        broken ? 9 : 13,
        broken ? [{ opType: 'DynamicQuantizeLinear', inputs: ['logits'], outputs: ['q', 's', 'z'] }] : [],
      );
      const skeleton = makeModel({ ...spec, initializers: {} });
      const tensors = Object.entries(spec.initializers ?? {}).map(([name, t]) =>
        tensorToWrite(name, t.dtype, t.dims, () => t),
      );
      const plan = planOnnxWrite(skeleton, tensors, {
        externalData: true,
        threshold: 0,
        dataLocation: dataFileName(modelPath),
      });
      const written = await writeOnnxModel(modelPath, plan, { force: false, inputs: [] });
      expect(written.dataPath && existsSync(written.dataPath)).toBe(true);
      const check = verifyWrittenModel({ modelPath, dataPath: written.dataPath, step: 'test' });
      if (!broken) {
        expect(await check).toMatchObject({ status: 'verified' });
        continue;
      }
      await expect(check).rejects.toThrow(/and its data file were deleted/);
      expect(existsSync(modelPath) || existsSync(written.dataPath as string)).toBe(false);
    }
  });

  it('outputs of types JavaScript cannot hold (int4) are not fetched; the rest are', async () => {
    const path = write('int4-out.onnx', {
      ...tokenModel(21, [{ opType: 'QuantizeLinear', inputs: ['logits', 's', 'zp'], outputs: ['q4'] }]),
      outputs: [
        { name: 'logits', dtype: 'float32' },
        { name: 'q4', dtype: 'int4' },
      ],
      initializers: {
        table: f32([7, 4]),
        w: f32([4, 5]),
        s: { dtype: 'float32', dims: [], data: Float32Array.of(0.1) },
        zp: { dtype: 'int4', dims: [], data: Int8Array.of(0) },
      },
    });
    const v = await verifyWrittenModel({ modelPath: path, step: 'test' });
    expect(v).toMatchObject({ status: 'verified', outputs: ['logits'], unreadOutputs: ['q4'] });
  });

  it('a bfloat16 graph output, which onnxruntime-node cannot describe to JavaScript: not verified, the file kept, the reason given', async () => {
    const path = write('bf16-out.onnx', {
      ...tokenModel(13, [{ opType: 'Cast', inputs: ['logits'], outputs: ['b'], attributes: { to: 16 } }]),
      outputs: [{ name: 'b', dtype: 'bfloat16' }],
    });
    const v = await verifyWrittenModel({ modelPath: path, step: 'test' });
    expect(v).toMatchObject({ status: 'skipped', reason: expect.stringContaining('element type 16') as unknown });
    expect(existsSync(path)).toBe(true);
  });
});

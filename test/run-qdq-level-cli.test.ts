import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { makeModel } from '../src/io/onnx/build.js';
import { decodeTensorProto, encodeModel } from '../src/io/onnx/proto.js';
import { tensorFromProto } from '../src/io/onnx/tensor.js';
import { writeNpy } from '../src/io/npy/npy.js';
import { mulberry32 } from '../src/quant/prng.js';
import { makeTensor } from '../src/tensor/tensor.js';
import { runCli } from './helpers/cli.js';

/*
 * `quantkit run --qdq-accuracy-level`: a DequantizeLinear(int4) → MatMul computed as the ONNX
 * Runtime session that fuses it into MatMulNBits with that accuracy_level
 * (session.qdq_matmulnbits_accuracy_level): 4, the default, quantizes A to int8 per block, 0 is
 * the float product. The two ORT results differ by far more than the tolerance, so each flag
 * value must pick the right one.
 */

const K = 64;
const N = 8;
const M = 4;
const BS = 32;
const r = mulberry32(5);
const codes = Int8Array.from({ length: K * N }, () => -8 + Math.floor(r() * 16));
const scales = Float32Array.from({ length: (K / BS) * N }, () => 0.01 + r() * 0.1);
const a = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
const bytes = encodeModel(
  makeModel({
    inputs: [{ name: 'a', dtype: 'float32', dims: [M, K] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: [M, N] }],
    initializers: { w: makeTensor('int4', [K, N], codes), s: makeTensor('float32', [K / BS, N], scales) },
    nodes: [
      { opType: 'DequantizeLinear', inputs: ['w', 's'], outputs: ['wd'], attributes: { axis: 0, block_size: BS } },
      { opType: 'MatMul', inputs: ['a', 'wd'], outputs: ['y'], name: 'mm' },
    ],
    opsets: { '': 21 },
    irVersion: 10,
  }),
);

const dir = mkdtempSync(join(tmpdir(), 'qk-qdq-level-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const modelPath = join(dir, 'dq.onnx');
const inputPath = join(dir, 'a.npy');
writeFileSync(modelPath, bytes);
writeFileSync(inputPath, writeNpy(makeTensor('float32', [M, K], a)));

async function ortAt(level: '0' | undefined): Promise<Float32Array> {
  const options: ort.InferenceSession.SessionOptions =
    level === undefined ? {} : { extra: { session: { qdq_matmulnbits_accuracy_level: level } } };
  const session = await ort.InferenceSession.create(bytes, options);
  const y = (await session.run({ a: new ort.Tensor('float32', a, [M, K]) })).y!.data as Float32Array;
  await session.release();
  return y;
}

function cliRun(flags: string[], out: string): Float32Array {
  const res = runCli(['run', modelPath, '-i', inputPath, '-o', join(dir, out), ...flags]);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  const t = tensorFromProto(decodeTensorProto(readFileSync(join(dir, out, 'output_0.pb'))));
  return t.data as Float32Array;
}

function maxDiff(x: Float32Array, y: Float32Array): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs((x[i] as number) - (y[i] as number)));
    scale = Math.max(scale, Math.abs(y[i] as number));
  }
  return { diff, scale };
}

describe('quantkit run --qdq-accuracy-level', () => {
  it('default and 4 give a default ORT session’s outputs, 0 the level-0 session’s', async () => {
    const want4 = await ortAt(undefined);
    const want0 = await ortAt('0');
    const apart = maxDiff(want4, want0);
    expect(apart.diff).toBeGreaterThan(1e-4 * apart.scale);
    for (const [flags, want] of [
      [[], want4],
      [['--qdq-accuracy-level', '4'], want4],
      [['--qdq-accuracy-level', '0'], want0],
    ] as const) {
      const { diff, scale } = maxDiff(cliRun([...flags], `out${flags.join('')}`), want);
      expect(diff).toBeLessThanOrEqual(1e-5 * scale);
    }
  });
  it('refuses a level it does not compute, naming the flag and the levels', () => {
    const res = runCli(['run', modelPath, '-i', inputPath, '--qdq-accuracy-level', '2']);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('--qdq-accuracy-level');
    expect(res.stderr).toMatch(/use 4 .* or 0/);
  });
});

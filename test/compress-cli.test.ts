import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { readNpy } from '../src/io/npy/npy.js';
import { runCli } from './helpers/cli.js';

/*
 * quantkit compress / decompress on the digits CNN: the stage table, the container read back into
 * the k-means ONNX model byte for byte, ORT running it, and damaged containers refused by name.
 */

describe('quantkit compress, decompress', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-compress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const qkc = join(dir, 'cnn.qkc');
  const onnx = join(dir, 'cnn-km.onnx');

  it('prune 0.5 + k-means 4 + Huffman: a table per stage, ratios growing, quality measured on the given data', () => {
    const args = ['models/cnn.onnx', '--prune', '0.5', '--kmeans', '4', '--eval', 'models/cnn-test-x.npy'];
    const labels = ['--eval-labels', 'models/cnn-test-y.npy'];
    const r = runCli(['compress', ...args, ...labels, '--huffman', '-o', qkc, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      stages: {
        stage: string;
        ratio: number;
        fileBytes: number;
        fileRatio: number;
        quality: { metric: string; value: number };
      }[];
      verification: { status: string };
    };
    expect(out.stages.map((s) => s.stage)).toEqual(['fp32', 'pruned', 'quantized', 'huffman']);
    // The whole-file ratio beside the weights' one: the written file's real bytes against the input's.
    const huffman = out.stages[3];
    expect(huffman?.fileBytes).toBe(readFileSync(qkc).length);
    expect(huffman?.fileRatio).toBe(readFileSync('models/cnn.onnx').length / readFileSync(qkc).length);
    const ratios = out.stages.map((s) => s.ratio);
    for (let i = 1; i < ratios.length; i++) expect(ratios[i]).toBeGreaterThan(ratios[i - 1] as number);
    expect(out.stages[0]?.quality.metric).toBe('accuracy');
    expect(out.verification.status).toBe('verified');
    const plain = runCli(['compress', ...args, ...labels, '-o', onnx]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/quantized\s+\d+\s+[\d.]+×\s+\d+\s+[\d.]+×/);
  });

  it('decompress gives the k-means ONNX model byte for byte, and ORT runs it to the same logits', async () => {
    const back = join(dir, 'back.onnx');
    const r = runCli(['decompress', qkc, '-o', back]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/4 Huffman-coded tensors/);
    expect(readFileSync(back)).toEqual(readFileSync(onnx));
    const x = readNpy(readFileSync('models/cnn-test-x.npy'));
    const s = await ort.InferenceSession.create(back);
    const y = await s.run({
      [s.inputNames[0] as string]: new ort.Tensor('float32', x.data as Float32Array, [...x.dims]),
    });
    expect((y[s.outputNames[0] as string]?.dims ?? [])[0]).toBe(x.dims[0]);
  });

  it('a damaged or foreign file is a one-line named error, and nothing is written', () => {
    const bad = readFileSync(qkc);
    bad[bad.length - 5] = (bad[bad.length - 5] as number) ^ 0x10;
    const damaged = join(dir, 'bad.qkc');
    writeFileSync(damaged, bad);
    const r = runCli(['decompress', damaged, '-o', join(dir, 'x.onnx')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/QK_COMPRESSED_CORRUPT: .*bad\.qkc: section '[tp]\d+' fails its CRC-32/);
    const foreign = runCli(['decompress', 'models/cnn.onnx', '-o', join(dir, 'y.onnx')]);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/QK_COMPRESSED_NOT_CONTAINER/);
    expect(() => readFileSync(join(dir, 'x.onnx'))).toThrow();
  });
});

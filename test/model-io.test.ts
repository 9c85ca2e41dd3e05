import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { makeModel, makeNode } from '../src/io/onnx/build.js';
import { decodeModel, encodeModel, TensorProto_DataLocation, type ModelProto } from '../src/io/onnx/proto.js';
import { makeAttribute } from '../src/io/onnx/attribute.js';
import { parseExternalDataRef } from '../src/io/onnx/external.js';
import { readSafetensorsHeader } from '../src/io/safetensors/index.js';
import { fileSource } from '../src/node/files.js';
import { convertFile } from '../src/flows/convert.js';
import { registerConvert } from '../src/cli/commands/convert.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { runCli } from './helpers/cli.js';

/*
 * convert keeps every tensor's bytes, so ONNX Runtime must compute bit-identical outputs from the
 * original and from every converted copy (inline → external, external → inline, external →
 * external elsewhere, transformers.js naming). ORT resolves external data relative to the model
 * path, so sessions are created from files, not buffers.
 */

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

function f32(dims: number[], seed: number): Tensor {
  const r = rng(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims, data: Float32Array.from({ length: n }, r) };
}

/** x[2,32] → MatMul w1 → Add b1 → Relu → MatMul w2 (from a Constant node) → Add b2, plus Gather from an embedding. */
function sampleModel(): ModelProto {
  return makeModel({
    nodes: [
      makeNode({
        opType: 'Constant',
        inputs: [],
        outputs: ['w2'],
        name: 'w2_const',
        attributes: { value: makeAttribute('value', f32([64, 16], 3)) },
      }),
      { opType: 'MatMul', inputs: ['x', 'w1'], outputs: ['h'], name: 'mm1' },
      { opType: 'Add', inputs: ['h', 'b1'], outputs: ['hb'], name: 'add1' },
      { opType: 'Relu', inputs: ['hb'], outputs: ['r'], name: 'relu' },
      { opType: 'MatMul', inputs: ['r', 'w2'], outputs: ['o'], name: 'mm2' },
      { opType: 'Add', inputs: ['o', 'b2'], outputs: ['y'], name: 'add2' },
      { opType: 'Gather', inputs: ['emb', 'ids'], outputs: ['e'], name: 'gather', attributes: { axis: 0 } },
    ],
    inputs: [
      { name: 'x', dtype: 'float32', dims: ['batch', 32] },
      { name: 'ids', dtype: 'int64', dims: [3] },
    ],
    outputs: [
      { name: 'y', dtype: 'float32', dims: ['batch', 16] },
      { name: 'e', dtype: 'float32', dims: [3, 40] },
    ],
    initializers: { w1: f32([32, 64], 1), b1: f32([64], 2), b2: f32([16], 4), emb: f32([100, 40], 5) },
    opsets: { '': 17 },
    irVersion: 8,
  });
}

async function ortOutputs(path: string): Promise<Uint8Array[]> {
  const session = await ort.InferenceSession.create(path);
  const x = f32([2, 32], 9);
  const out = await session.run({
    x: new ort.Tensor('float32', x.data as Float32Array, [2, 32]),
    ids: new ort.Tensor('int64', BigInt64Array.of(0n, 57n, 99n), [3]),
  });
  const result = session.outputNames.map((n) => {
    const d = out[n]?.data as Float32Array;
    return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
  });
  await session.release();
  return result;
}

const root = mkdtempSync(join(tmpdir(), 'qk-model-io-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('convert keeps ONNX Runtime outputs bit-identical', () => {
  const original = join(root, 'inline.onnx');
  writeFileSync(original, encodeModel(sampleModel()));

  it('inline → external → inline → relocated external (onnx_data naming)', async () => {
    const want = await ortOutputs(original);
    expect(want[0]!.length).toBe(2 * 16 * 4);

    const ext = join(root, 'ext.onnx');
    const r1 = await convertFile(original, ext, { externalData: true, threshold: 1024 });
    expect(r1.externalTensors).toBe(2); // w1 (8 KiB) and emb (16 KB); b1/b2 stay inline
    expect(existsSync(join(root, 'ext.onnx.data'))).toBe(true);
    const extProto = decodeModel(readFileSync(ext));
    const extNames = extProto
      .graph!.initializer.filter((p) => p.dataLocation === TensorProto_DataLocation.EXTERNAL)
      .map((p) => p.name);
    expect(extNames.sort()).toEqual(['emb', 'w1']);
    expect(extProto.graph!.node.map((n) => n.opType)).toContain('Constant'); // the graph is left as it was
    expect(await ortOutputs(ext)).toEqual(want);

    const back = join(root, 'back.onnx');
    const r2 = await convertFile(ext, back);
    expect(r2.dataPath).toBeUndefined();
    expect(
      decodeModel(readFileSync(back)).graph!.initializer.every(
        (p) => p.dataLocation !== TensorProto_DataLocation.EXTERNAL,
      ),
    ).toBe(true);
    expect(await ortOutputs(back)).toEqual(want);
    // inline → external → inline restores every initializer's raw bytes.
    const a = decodeModel(readFileSync(original)).graph!.initializer;
    const b = decodeModel(readFileSync(back)).graph!.initializer;
    expect(b.map((p) => [p.name, Buffer.from(p.rawData).toString('hex')])).toEqual(
      a.map((p) => [p.name, Buffer.from(p.rawData).toString('hex')]),
    );

    const sub = join(root, 'moved');
    mkdirSync(sub);
    const moved = join(sub, 'model.onnx');
    const r3 = await convertFile(ext, moved, { externalData: true, threshold: 0, dataNaming: 'onnx_data' });
    expect(r3.dataPath).toBe(join(sub, 'model.onnx_data'));
    const movedProto = decodeModel(readFileSync(moved));
    for (const p of movedProto.graph!.initializer) expect(parseExternalDataRef(p).location).toBe('model.onnx_data');
    expect(await ortOutputs(moved)).toEqual(want);
  });

  it('the same input gives the same output bytes', async () => {
    await convertFile(original, join(root, 'd1.onnx'), { externalData: true });
    await convertFile(original, join(root, 'd2.onnx'), { externalData: true });
    expect(readFileSync(join(root, 'd1.onnx.data'))).toEqual(readFileSync(join(root, 'd2.onnx.data')));
    // The .onnx files differ only by the data file name they point at.
    const m1 = readFileSync(join(root, 'd1.onnx')).toString('latin1').replaceAll('d1.onnx.data', 'dX.onnx.data');
    const m2 = readFileSync(join(root, 'd2.onnx')).toString('latin1').replaceAll('d2.onnx.data', 'dX.onnx.data');
    expect(m1).toBe(m2);
  });

  it('ONNX → safetensors keeps the bytes; safetensors → safetensors keeps the file', async () => {
    const st = join(root, 'w.safetensors');
    const r = await convertFile(join(root, 'ext.onnx'), st);
    expect(r.tensors).toBe(5); // 4 initializers + the weight lifted from the Constant node
    const src = fileSource(st);
    try {
      const header = readSafetensorsHeader(src);
      const proto = sampleModel();
      for (const p of proto.graph!.initializer) {
        const e = header.tensors.find((t) => t.name === p.name)!;
        expect(Buffer.from(src.read(e.offset, e.length)).equals(Buffer.from(p.rawData))).toBe(true);
      }
    } finally {
      src.close();
    }
    const st2 = join(root, 'w2.safetensors');
    await convertFile(st, st2);
    expect(readFileSync(st2)).toEqual(readFileSync(st));
  });

  it('never writes over an input, and replaces an existing output only with force', async () => {
    const ext = join(root, 'ext.onnx');
    await expect(convertFile(ext, ext, { force: true })).rejects.toThrow(/QK_OUTPUT_IS_INPUT|is the input/);
    // The output's data file would be the input's data file: refused before anything is written.
    await expect(convertFile(ext, ext, { externalData: true, force: true })).rejects.toMatchObject({
      code: 'QK_OUTPUT_IS_INPUT',
    });
    const target = join(root, 'again.onnx');
    await convertFile(ext, target);
    await expect(convertFile(ext, target)).rejects.toMatchObject({ code: 'QK_OUTPUT_EXISTS' });
    await convertFile(ext, target, { force: true });
    await expect(convertFile(join(root, 'w.safetensors'), join(root, 'w.onnx'))).rejects.toMatchObject({
      code: 'QK_CONVERT_UNSUPPORTED',
    });
  });

  it('the convert command parses its flags', async () => {
    const program = new Command().exitOverride();
    registerConvert(program);
    const out = join(root, 'cli.onnx');
    await program.parseAsync(
      ['convert', original, out, '--external-data', '--threshold', '0', '--data-name', 'onnx_data'],
      { from: 'user' },
    );
    expect(existsSync(join(root, 'cli.onnx_data'))).toBe(true);
    expect(await ortOutputs(out)).toEqual(await ortOutputs(original));
    await expect(
      program.parseAsync(['convert', original, join(root, 'cli2.onnx'), '--threshold', 'x'], { from: 'user' }),
    ).rejects.toMatchObject({ code: 'QK_BAD_OPTION' });
  });
});

describe('inspect --json', () => {
  it('parameter count equals the sum of initializer sizes (inline and external, Constant weights included)', async () => {
    const proto = sampleModel();
    const initElems = proto.graph!.initializer.reduce((s, p) => s + p.dims.reduce((a, d) => a * Number(d), 1), 0);
    const constElems = 64 * 16; // the Constant node's tensor, lifted to an initializer
    for (const file of ['inline.onnx', 'ext.onnx']) {
      const r = runCli(['inspect', join(root, file), '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as {
        parameters: number;
        parameterBytes: number;
        externalDataFiles: string[];
      };
      expect(report.parameters).toBe(initElems + constElems);
      expect(report.parameterBytes).toBe(4 * (initElems + constElems));
      expect(report.externalDataFiles).toEqual(file === 'ext.onnx' ? ['ext.onnx.data'] : []);
    }
  });
});

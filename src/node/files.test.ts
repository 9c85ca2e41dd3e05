import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { isQuantkitError } from '../errors.js';
import { readExternalTensorBytes } from '../io/onnx/external.js';
import { create, encodeModel, ModelProtoSchema, TensorProto_DataLocation } from '../io/onnx/proto.js';
import { readSafetensorsHeader, readSafetensorsTensor, safetensorsChunks } from '../io/safetensors/index.js';
import { makeTensor } from '../tensor/tensor.js';
import { fileSource, modelDirFiles, writeFileAtomic } from './files.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'qk-files-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function fresh(name: string): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    return isQuantkitError(e) ? e.code : `not a QuantkitError: ${String(e)}`;
  }
  return 'ok';
}

describe('fileSource', () => {
  it('reads ranges at offsets without reading the whole file', () => {
    const p = join(fresh('src'), 'a.bin');
    writeFileSync(
      p,
      Uint8Array.from({ length: 100 }, (_, i) => i),
    );
    const s = fileSource(p);
    expect(s.size).toBe(100);
    expect([...s.read(10, 5)]).toEqual([10, 11, 12, 13, 14]);
    expect(s.read(100, 0).length).toBe(0);
    expect(() => s.read(98, 3)).toThrow(RangeError);
    s.close();
    expect(() => s.read(0, 1)).toThrow();
  });

  it('reads past 2 GiB and across the 2^31 boundary (sparse 3 GiB file)', () => {
    const p = join(fresh('big'), 'sparse.bin');
    const fd = openSync(p, 'w');
    ftruncateSync(fd, 3 * 2 ** 30);
    writeSync(fd, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 0, 8, 2 ** 31 - 4);
    writeSync(fd, Uint8Array.from([9, 9]), 0, 2, 3 * 2 ** 30 - 2);
    closeSync(fd);
    const s = fileSource(p);
    expect(s.size).toBe(3 * 2 ** 30);
    expect([...s.read(2 ** 31 - 4, 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...s.read(3 * 2 ** 30 - 3, 3)]).toEqual([0, 9, 9]);
    s.close();
    rmSync(p);
  });

  it('names missing files, folders and files that shrink under it', async () => {
    const d = fresh('errs');
    expect(await codeOf(() => fileSource(join(d, 'nope.bin')))).toBe('QK_FILE_NOT_FOUND');
    expect(await codeOf(() => fileSource(d))).toBe('QK_FILE_NOT_A_FILE');
    const p = join(d, 'shrinks.bin');
    writeFileSync(p, new Uint8Array(64));
    const s = fileSource(p);
    truncateSync(p, 10);
    expect(await codeOf(() => s.read(0, 64))).toBe('QK_FILE_TRUNCATED');
    s.close();
  });
});

describe('modelDirFiles', () => {
  it('opens files inside the model folder (also through inner symlinks) and caches them', () => {
    const d = fresh('model1');
    mkdirSync(join(d, 'data'));
    writeFileSync(join(d, 'data', 'w.bin'), Uint8Array.from([5, 6, 7]));
    symlinkSync(join(d, 'data', 'w.bin'), join(d, 'alias.bin'));
    const files = modelDirFiles(join(d, 'model.onnx'));
    const a = files.open('data/w.bin');
    expect([...a.read(0, 3)]).toEqual([5, 6, 7]);
    expect(files.open('./data/w.bin')).toBe(a);
    expect(files.open('alias.bin')).toBe(a);
    files.close();
    expect(() => a.read(0, 1)).toThrow();
  });

  it('refuses symlinks (to a file or a folder) whose real path leaves the model folder', async () => {
    const outsideDir = fresh('outside');
    writeFileSync(join(outsideDir, 'secret.bin'), new Uint8Array(16));
    const d = fresh('model2');
    symlinkSync(join(outsideDir, 'secret.bin'), join(d, 'w.bin'));
    symlinkSync(outsideDir, join(d, 'sub'));
    symlinkSync('../outside/secret.bin', join(d, 'rel.bin'));
    // A sibling whose name starts with the model folder's name must not pass a prefix check.
    const sibling = fresh('model2-evil');
    writeFileSync(join(sibling, 'x.bin'), new Uint8Array(4));
    symlinkSync(join(sibling, 'x.bin'), join(d, 'prefix.bin'));
    const files = modelDirFiles(join(d, 'model.onnx'));
    for (const loc of [
      'w.bin',
      'sub/secret.bin',
      'rel.bin',
      'prefix.bin',
      '../outside/secret.bin',
      join(outsideDir, 'secret.bin'),
    ]) {
      expect(await codeOf(() => files.open(loc)), loc).toBe('QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR');
    }
    expect(await codeOf(() => files.open('missing.bin'))).toBe('QK_EXTERNAL_DATA_NOT_FOUND');
    files.close();
  });

  it('works when the model folder itself is reached through a symlink', () => {
    const real = fresh('model3');
    writeFileSync(join(real, 'w.bin'), Uint8Array.from([1]));
    symlinkSync(real, join(root, 'model3-link'));
    const files = modelDirFiles(join(root, 'model3-link', 'model.onnx'));
    expect([...files.open('w.bin').read(0, 1)]).toEqual([1]);
    files.close();
  });

  it('reads an external initializer exactly as ONNX Runtime does', async () => {
    const d = fresh('ort');
    const w = new Float32Array([1.5, -2, 3.25, 1e-3, -0, 7]);
    const blob = new Uint8Array(16 + w.byteLength);
    blob.fill(0xee, 0, 16); // junk before the offset, so a wrong offset shows
    blob.set(new Uint8Array(w.buffer), 16);
    mkdirSync(join(d, 'weights'));
    writeFileSync(join(d, 'weights', 'w.data'), blob);
    const dims = [2n, 3n];
    const f32 = { elemType: 1, shape: { dim: dims.map((v) => ({ value: { case: 'dimValue' as const, value: v } })) } };
    const model = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ domain: '', version: 13n }],
      graph: {
        name: 'g',
        node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'] }],
        initializer: [
          {
            name: 'w',
            dims,
            dataType: 1,
            dataLocation: TensorProto_DataLocation.EXTERNAL,
            externalData: [
              { key: 'location', value: 'weights/w.data' },
              { key: 'offset', value: '16' },
              { key: 'length', value: '24' },
            ],
          },
        ],
        input: [{ name: 'x', type: { value: { case: 'tensorType', value: f32 } } }],
        output: [{ name: 'y', type: { value: { case: 'tensorType', value: f32 } } }],
      },
    });
    const modelPath = join(d, 'model.onnx');
    writeFileSync(modelPath, encodeModel(model));
    const session = await ort.InferenceSession.create(modelPath);
    // x = -0 everywhere: w + (-0) is w bit for bit, -0 included (IEEE 754 addition).
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(6).fill(-0), [2, 3]) });
    await session.release();
    const files = modelDirFiles(modelPath);
    const ours = readExternalTensorBytes(model.graph!.initializer[0]!, files);
    files.close();
    const theirs = out.y!.data as Float32Array;
    expect(new Float32Array(ours.buffer, ours.byteOffset, 6)).toEqual(theirs);
    expect(theirs).toEqual(w);
  });
});

describe('writeFileAtomic', () => {
  const tmpLeft = (d: string) => readdirSync(d).filter((n) => n.endsWith('.tmp'));

  it('writes sync and async chunk streams', async () => {
    const d = fresh('w1');
    await writeFileAtomic(join(d, 'a.bin'), [Uint8Array.from([1, 2]), Uint8Array.from([3])], { force: false });
    expect([...readFileSync(join(d, 'a.bin'))]).toEqual([1, 2, 3]);
    async function* gen() {
      yield Uint8Array.from([4]);
      yield new Uint8Array(0);
      yield Uint8Array.from([5, 6]);
    }
    await writeFileAtomic(join(d, 'b.bin'), gen(), { force: false });
    expect([...readFileSync(join(d, 'b.bin'))]).toEqual([4, 5, 6]);
    expect(tmpLeft(d)).toEqual([]);
  });

  it('refuses to replace an existing file without force, and replaces it with force', async () => {
    const d = fresh('w2');
    const p = join(d, 'out.bin');
    writeFileSync(p, 'old');
    try {
      await writeFileAtomic(p, [Uint8Array.from([1])], { force: false });
      expect.unreachable();
    } catch (e) {
      expect(isQuantkitError(e) && e.code).toBe('QK_OUTPUT_EXISTS');
      expect(e).toMatchObject({ hint: 'pass `force` to replace it', options: ['force'] });
    }
    expect(readFileSync(p, 'utf8')).toBe('old');
    await writeFileAtomic(p, [Uint8Array.from([0x6e, 0x65, 0x77])], { force: true });
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(tmpLeft(d)).toEqual([]);
  });

  it('refuses to write over an input: same path, a symlink to it, or a hard link, even with force', async () => {
    const d = fresh('w3');
    const input = join(d, 'in.onnx');
    writeFileSync(input, 'model');
    symlinkSync(input, join(d, 'sym.onnx'));
    linkSync(input, join(d, 'hard.onnx'));
    for (const out of [input, join(d, '.', 'in.onnx'), join(d, 'sym.onnx'), join(d, 'hard.onnx')]) {
      expect(
        await codeOf(() => writeFileAtomic(out, [Uint8Array.from([1])], { force: true, inputs: [input] })),
        out,
      ).toBe('QK_OUTPUT_IS_INPUT');
    }
    expect(readFileSync(input, 'utf8')).toBe('model');
  });

  it('removes the temp file and leaves the old output when the stream fails midway', async () => {
    const d = fresh('w4');
    const p = join(d, 'out.bin');
    writeFileSync(p, 'old');
    function* failing() {
      yield new Uint8Array(1000);
      throw new Error('tensor 7 failed');
    }
    await expect(writeFileAtomic(p, failing(), { force: true })).rejects.toThrow('tensor 7 failed');
    expect(readFileSync(p, 'utf8')).toBe('old');
    expect(tmpLeft(d)).toEqual([]);
    await expect(writeFileAtomic(join(d, 'new.bin'), failing(), { force: false })).rejects.toThrow('tensor 7 failed');
    expect(readdirSync(d)).toEqual(['out.bin']);
  });

  it('names a missing folder and a folder in the way', async () => {
    const d = fresh('w5');
    expect(await codeOf(() => writeFileAtomic(join(d, 'no', 'x.bin'), [], { force: true }))).toBe(
      'QK_OUTPUT_DIR_MISSING',
    );
    mkdirSync(join(d, 'dir'));
    expect(await codeOf(() => writeFileAtomic(join(d, 'dir'), [], { force: true }))).toBe('QK_OUTPUT_IS_DIRECTORY');
  });

  it('streams a safetensors file to disk one tensor at a time and reads it back from the file', async () => {
    const d = fresh('w6');
    const tensors = [
      makeTensor('float32', [3], new Float32Array([1, 2, 3]), 'a'),
      makeTensor('int8', [2], new Int8Array([-1, 1]), 'b'),
    ];
    const entries = tensors.map((t) => ({ name: t.name!, dtype: t.dtype, dims: t.dims }));
    const p = join(d, 'm.safetensors');
    await writeFileAtomic(
      p,
      safetensorsChunks(entries, (i) => tensors[i]!),
      { force: false },
    );
    const src = fileSource(p);
    const h = readSafetensorsHeader(src);
    expect(h.tensors.map((e) => readSafetensorsTensor(src, e).data)).toEqual(tensors.map((t) => t.data));
    src.close();
  });
});

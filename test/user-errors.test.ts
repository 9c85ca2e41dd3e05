import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import { makeModel } from '../src/io/onnx/build.js';
import { readNpy, writeNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel, TensorProto_DataLocation } from '../src/io/onnx/proto.js';
import { readSafetensorsHeader } from '../src/io/safetensors/index.js';
import { fileSource } from '../src/node/files.js';
import { makeTensor, type Tensor } from '../src/tensor/tensor.js';
import { REPO, runCli } from './helpers/cli.js';

/*
 * Every user mistake of issue 11's list: exit 1 and one line naming the problem and the expected
 * value. In-process through main() (the CLI's own exit-code mapping) to stay fast; a subprocess
 * only where the working directory matters.
 */

const LM = join(REPO, 'models', 'lm.onnx');
const LM_EVAL = join(REPO, 'models', 'lm-eval.npy');
const LM_CALIB = join(REPO, 'models', 'lm-calib.npy');
const CNN = join(REPO, 'models', 'cnn.onnx');
const CNN_X = join(REPO, 'models', 'cnn-test-x.npy');
const CNN_Y = join(REPO, 'models', 'cnn-test-y.npy');

const dir = mkdtempSync(join(tmpdir(), 'qk-errs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err.push(String(s));
    return true;
  });
  try {
    const code = await main(['node', 'quantkit', ...args]);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

/** Exit 1, one line, the code, and every fragment the message must name. */
function expectUserError(r: { code: number; stderr: string }, code: string, ...names: (string | RegExp)[]): void {
  expect(r.stderr).toMatch(new RegExp(`error ${code}:`));
  expect(r.code).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  for (const n of names)
    expect(r.stderr).toMatch(typeof n === 'string' ? new RegExp(n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : n);
}

function npy(name: string, t: Tensor): string {
  const path = join(dir, name);
  writeFileSync(path, writeNpy(t));
  return path;
}

/** x [N, 32] → MatMul W1 [32, 32] + B1 → MatMul W2 [32, 32]: small enough for every scheme and GPTQ. */
function mlp(name: string, edit: (w1: Float32Array, b1: Float32Array) => void = () => {}): string {
  const w1 = Float32Array.from({ length: 32 * 32 }, (_, i) => Math.sin(i) * 0.2);
  const b1 = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i) * 0.1);
  edit(w1, b1);
  const path = join(dir, name);
  writeFileSync(
    path,
    encodeModel(
      makeModel({
        nodes: [
          { opType: 'MatMul', inputs: ['x', 'W1'], outputs: ['h0'], name: 'fc1' },
          { opType: 'Add', inputs: ['h0', 'B1'], outputs: ['h'], name: 'fc1_bias' },
          { opType: 'MatMul', inputs: ['h', 'W2'], outputs: ['y'], name: 'fc2' },
        ],
        inputs: [{ name: 'x', dtype: 'float32', dims: ['batch', 32] }],
        outputs: [{ name: 'y', dtype: 'float32', dims: ['batch', 32] }],
        initializers: {
          W1: makeTensor('float32', [32, 32], w1),
          B1: makeTensor('float32', [32], b1),
          W2: makeTensor(
            'float32',
            [32, 32],
            Float32Array.from({ length: 32 * 32 }, (_, i) => Math.cos(i * 0.7) * 0.2),
          ),
        },
        opsets: { '': 17 },
      }),
    ),
  );
  return path;
}

const mlpCalib = (rows = 64, fill: (i: number) => number = (i) => Math.sin(i * 0.37) * 2) =>
  makeTensor(
    'float32',
    [rows, 32],
    Float32Array.from({ length: rows * 32 }, (_, i) => fill(i)),
  );

describe('arrays that do not fit the model are exit 1 naming the expected shape', () => {
  it("compare with the LM's eval windows [64, 65]: the model takes [N, ≤64], and the hint says to slice", async () => {
    const r = await cli('compare', LM, LM, '--input', LM_EVAL);
    expectUserError(r, 'QK_INPUT_TOO_LONG', "'input_ids'", 'int64[64, 65]', '[N, ≤64]', 'x[:, :64]');
  });

  it('a --calib array of the wrong dtype, the wrong rank or a wrong fixed dim', async () => {
    const out = join(dir, 'never.onnx');
    expectUserError(
      await cli('quantize', CNN, '-o', out, '--scheme', 'int8-static', '--calib', LM_CALIB),
      'QK_INPUT_DTYPE',
      'int64[',
      'float32[batch, 1, 8, 8]',
    );
    const flat = npy('cnn-flat.npy', makeTensor('float32', [4, 64], new Float32Array(256)));
    expectUserError(
      await cli('quantize', CNN, '-o', out, '--scheme', 'int8-static', '--calib', flat),
      'QK_INPUT_RANK',
      'rank 2',
      'rank 4',
    );
    const wide = npy('cnn-wide.npy', makeTensor('float32', [4, 1, 8, 9], new Float32Array(4 * 72)));
    expectUserError(
      await cli('quantize', CNN, '-o', out, '--scheme', 'int8-static', '--calib', wide),
      'QK_INPUT_SHAPE',
      'axis 3 must be 8',
      '[N, 1, 8, 8]',
    );
  });

  it('a sequence longer than the positional table and a token id past the vocabulary (GPTQ --calib)', async () => {
    const out = join(dir, 'never.onnx');
    const ids = readNpy(readFileSync(LM_EVAL));
    expectUserError(
      await cli('quantize', LM, '-o', out, '--scheme', 'q4', '--calib', LM_EVAL),
      'QK_INPUT_TOO_LONG',
      "table 'pos'",
      '≤64',
    );
    // The first 64 ids of 8 windows, one of them past the vocabulary (77 ids: 0…76).
    const bad = BigInt64Array.from(
      { length: 8 * 64 },
      (_, i) => (ids.data as BigInt64Array)[Math.floor(i / 64) * 65 + (i % 64)] as bigint,
    );
    bad[100] = 77n;
    const path = npy('lm-bad-id.npy', makeTensor('int64', [8, 64], bad));
    expectUserError(
      await cli('quantize', LM, '-o', out, '--scheme', 'q4', '--calib', path),
      'QK_INPUT_ID_RANGE',
      'id 77',
      "'tok.weight' has 77 rows",
    );
  });
});

describe('files and flags', () => {
  it('a directory given as the model says so', async () => {
    expectUserError(await cli('inspect', join(REPO, 'models')), 'QK_FILE_IS_DIRECTORY', 'is a directory');
    expectUserError(
      await cli('quantize', join(REPO, 'models'), '-o', join(dir, 'x.onnx'), '--scheme', 'q4'),
      'QK_FILE_IS_DIRECTORY',
    );
    expectUserError(await cli('compare', join(REPO, 'models'), CNN, '--input', CNN_X), 'QK_FILE_IS_DIRECTORY');
    expectUserError(await cli('run', join(REPO, 'models'), '--input', CNN_X), 'QK_FILE_IS_DIRECTORY');
  });

  it('compare without --input names --input', async () => {
    const r = await cli('compare', CNN, CNN);
    expectUserError(r, 'QK_INPUT_MISSING', '--input');
    expect(r.stderr).not.toMatch(/calib/);
  });

  it('an unknown scheme lists every scheme, int8-dynamic and int8-static too', async () => {
    expectUserError(
      await cli('quantize', CNN, '-o', join(dir, 'x.onnx'), '--scheme', 'int3'),
      'QK_UNKNOWN_SCHEME',
      'int8-dynamic',
      'int8-static',
      'q4',
      'nf4',
    );
  });

  it('--exclude that matches nothing is refused (weight-only and activation schemes)', async () => {
    expectUserError(
      await cli('quantize', CNN, '-o', join(dir, 'x.onnx'), '--scheme', 'int8', '--exclude', 'nosuchthing'),
      'QK_EXCLUDE_NO_MATCH',
      'nosuchthing',
      'Conv',
    );
    expectUserError(
      await cli(
        'quantize',
        CNN,
        '-o',
        join(dir, 'x.onnx'),
        '--scheme',
        'int8-dynamic',
        '--exclude',
        'Conv,nosuchthing',
      ),
      'QK_EXCLUDE_NO_MATCH',
      'nosuchthing',
    );
  });

  it('inspect --top takes a positive whole number', async () => {
    for (const top of ['abc', '-1', '0', '2.5'])
      expectUserError(await cli('inspect', CNN, '--top', top), 'QK_BAD_OPTION', `--top "${top}"`);
    expect((await cli('inspect', CNN, '--top', '3')).code).toBe(0);
  });

  it('--labels: a class id past the classes, a negative one, or a count that is not one per row', async () => {
    const y = readNpy(readFileSync(CNN_Y));
    const labels = BigInt64Array.from(y.data as BigInt64Array);
    const big = BigInt64Array.from(labels);
    big[3] = 10n;
    expectUserError(
      await cli('compare', CNN, CNN, '--input', CNN_X, '--labels', npy('y-big.npy', makeTensor('int64', y.dims, big))),
      'QK_COMPARE_LABELS',
      'label 10',
      '0…9',
    );
    const neg = BigInt64Array.from(labels);
    neg[0] = -1n;
    expectUserError(
      await cli('compare', CNN, CNN, '--input', CNN_X, '--labels', npy('y-neg.npy', makeTensor('int64', y.dims, neg))),
      'QK_COMPARE_LABELS',
      'label -1',
    );
    const short = labels.subarray(0, labels.length - 1);
    expectUserError(
      await cli(
        'compare',
        CNN,
        CNN,
        '--input',
        CNN_X,
        '--labels',
        npy('y-short.npy', makeTensor('int64', [short.length], short)),
      ),
      'QK_COMPARE_LABELS',
      `${short.length} labels for ${labels.length} rows`,
    );
  });
});

describe('NaN and Inf', () => {
  const nanWeight = () =>
    mlp('nan-w1.onnx', (w1) => {
      w1[5] = NaN;
    });

  it('fp16 and bf16 refuse a NaN weight, naming it and --non-finite', async () => {
    const m = nanWeight();
    for (const scheme of ['fp16', 'bf16']) {
      expectUserError(
        await cli('quantize', m, '-o', join(dir, `nan-${scheme}.onnx`), '--scheme', scheme),
        'QK_NONFINITE_WEIGHTS',
        "'W1'",
        'NaN',
        'flat index 5',
        '--non-finite clamp',
        '--non-finite keep',
      );
    }
    expectUserError(
      await cli('quantize', m, '-o', join(dir, 'nan-int8.onnx'), '--scheme', 'int8'),
      'QK_NONFINITE_WEIGHTS',
      '--non-finite',
    );
    expectUserError(
      await cli('quantize', m, '-o', join(dir, 'x.onnx'), '--scheme', 'int8', '--non-finite', 'ignore'),
      'QK_BAD_OPTION',
      'error, clamp, keep',
    );
  });

  it('--non-finite clamp writes NaN as 0; --non-finite keep leaves the weight in fp32 and says so', async () => {
    const m = nanWeight();
    const clamp = await cli(
      'quantize',
      m,
      '-o',
      join(dir, 'clamp.onnx'),
      '--scheme',
      'int8',
      '--non-finite',
      'clamp',
      '--json',
    );
    expect(clamp.code).toBe(0);
    const cr = JSON.parse(clamp.stdout) as {
      layers: { weight: string; scheme: string; sqnrDb: number | string }[];
      notes: string[];
    };
    expect(cr.layers.find((l) => l.weight === 'W1')).toMatchObject({ scheme: 'int8' });
    expect(cr.notes.join('\n')).toMatch(/--non-finite clamp.*'W1' \(1\)/);
    const keep = await cli(
      'quantize',
      m,
      '-o',
      join(dir, 'keep.onnx'),
      '--scheme',
      'bf16',
      '--non-finite',
      'keep',
      '--json',
    );
    expect(keep.code).toBe(0);
    const kr = JSON.parse(keep.stdout) as { layers: { weight: string; scheme: string }[]; notes: string[] };
    expect(kr.layers.find((l) => l.weight === 'W1')?.scheme).toBe('fp32');
    expect(kr.layers.find((l) => l.weight === 'W2')?.scheme).toBe('bf16');
    expect(kr.notes.join('\n')).toMatch(/--non-finite keep.*'W1'/);
  });

  /** q4 with GPTQ (calibration data given) on the MLP file `m`. */
  const gptqCli = (m: string) =>
    cli(
      'quantize',
      m,
      '-o',
      join(dir, 'g.onnx'),
      '--scheme',
      'q4',
      '--block-size',
      '16',
      '--calib',
      npy('mlp-calib.npy', mlpCalib()),
    );

  it('GPTQ on a NaN bias is refused up front, naming the bias', async () => {
    const m = mlp('nan-bias.onnx', (_w, b) => {
      b[3] = NaN;
    });
    expectUserError(await gptqCli(m), 'QK_NONFINITE_WEIGHTS', "'B1'");
  });

  it('GPTQ on a 3e38 weight is refused up front, naming the weight', async () => {
    const m = mlp('huge-w1.onnx', (w1) => {
      w1[0] = 3e38;
    });
    const r = await gptqCli(m);
    expectUserError(r, 'QK_WEIGHT_OVERFLOW', "'W1' holds 3");
    expect(r.stderr).not.toMatch(/positive definite/);
  });

  it('calibration data all NaN is refused; one NaN sample is left out and the report says so', async () => {
    const m = mlp('plain.onnx');
    const allNaN = npy(
      'all-nan.npy',
      mlpCalib(16, () => NaN),
    );
    expectUserError(
      await cli('quantize', m, '-o', join(dir, 's.onnx'), '--scheme', 'int8-static', '--calib', allNaN),
      'QK_CALIB_NON_FINITE',
      '16 --calib samples',
    );
    const one = mlpCalib(16);
    (one.data as Float32Array)[5 * 32 + 7] = Infinity;
    const r = await cli(
      'quantize',
      m,
      '-o',
      join(dir, 's.onnx'),
      '--scheme',
      'int8-static',
      '--calib',
      npy('one-inf.npy', one),
      '--json',
    );
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { notes: string[] }).notes).toContain(
      '1 of 16 --calib samples hold NaN or ±Inf and were left out; calibrated on the other 15',
    );
  });
});

describe('external data is read from the model folder, whatever the working directory', () => {
  const folder = join(dir, 'ext');
  const ext = join(folder, 'cnn.onnx');

  it('run and compare load a model with external data from another folder', async () => {
    mkdirSync(folder, { recursive: true });
    expect((await cli('convert', CNN, ext, '--external-data', '--threshold', '0')).code).toBe(0);
    const x = npy('cnn-8.npy', {
      ...readNpy(readFileSync(CNN_X)),
      dims: [8, 1, 8, 8],
      data: (readNpy(readFileSync(CNN_X)).data as Float32Array).slice(0, 8 * 64),
    });
    // The working directory (the repository) is not the model's folder.
    const run = runCli(['run', ext, '--input', x]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const cmp = runCli(['compare', CNN, ext, '--input', x]);
    expect(cmp.stderr).toBe('');
    expect(cmp.stdout).toMatch(/logits\s+exact/);
  });

  it('inspect warns when external data lies outside the model folder', async () => {
    const sub = join(dir, 'outside', 'model');
    mkdirSync(sub, { recursive: true });
    copyFileSync(`${ext}.data`, join(dir, 'outside', 'cnn.onnx.data'));
    const proto = decodeModel(readFileSync(ext));
    for (const t of proto.graph?.initializer ?? []) {
      if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL) continue;
      for (const kv of t.externalData) if (kv.key === 'location') kv.value = '../cnn.onnx.data';
    }
    const moved = join(sub, 'cnn.onnx');
    writeFileSync(moved, encodeModel(proto));
    const r = await cli('inspect', moved);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /warning: external data "\.\.\/cnn\.onnx\.data": convert, quantize and run will refuse this model/,
    );
    expectUserError(await cli('convert', moved, join(dir, 'moved.onnx')), 'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR');
  });
});

describe('convert and inspect count parameters, not shape constants', () => {
  it('safetensors export of the LM holds its initializers and no int64 shape constants', async () => {
    const proto = decodeModel(readFileSync(LM));
    const real = (proto.graph?.initializer ?? []).map((t) => t.name).sort();
    const out = join(dir, 'lm.safetensors');
    const r = await cli('convert', LM, out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/left out \d+ Constant-node values that are not weights/);
    const src = fileSource(out);
    try {
      const header = readSafetensorsHeader(src);
      expect(header.tensors.map((t) => t.name).sort()).toEqual(real);
    } finally {
      src.close();
    }
  });

  it("inspect's parameters leave int64 constants out and say the rule", async () => {
    const path = join(dir, 'with-shape.onnx');
    writeFileSync(
      path,
      encodeModel(
        makeModel({
          nodes: [
            { opType: 'MatMul', inputs: ['x', 'W'], outputs: ['h'] },
            { opType: 'Reshape', inputs: ['h', 'shape'], outputs: ['y'] },
          ],
          inputs: [{ name: 'x', dtype: 'float32', dims: [2, 4] }],
          outputs: [{ name: 'y', dtype: 'float32', dims: [6] }],
          initializers: {
            W: makeTensor('float32', [4, 3], new Float32Array(12)),
            shape: makeTensor('int64', [1], BigInt64Array.of(6n)),
          },
        }),
      ),
    );
    const r = await cli('inspect', path, '--json');
    expect(JSON.parse(r.stdout)).toMatchObject({
      parameters: 12,
      parameterBytes: 48,
      otherTensors: { tensors: 1, elements: 1 },
    });
    expect((await cli('inspect', path)).stdout).toMatch(
      /parameters: 12 in .* \(float tensors and quantized weights; 1 integer tensors \(shapes, indices\) not counted\)/,
    );
  });

  it('convert blames a corrupt input file, not a pass', async () => {
    const proto = decodeModel(readFileSync(mlp('for-corrupt.onnx')));
    const w = proto.graph?.initializer.find((t) => t.name === 'W2');
    if (!w) throw new Error('W2 missing');
    w.rawData = w.rawData.subarray(0, w.rawData.length - 4);
    const bad = join(dir, 'corrupt.onnx');
    writeFileSync(bad, encodeModel(proto));
    const r = await cli('convert', bad, join(dir, 'corrupt-out.onnx'));
    expectUserError(r, 'QK_TENSOR_DATA_LENGTH', "'W2'", 'truncated or corrupt');
    expect(r.stderr).not.toMatch(/bug in the pass/);
  });
});

import { rowCosineAndTop1 } from '../src/quant/metrics.js';
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  env,
  pipeline,
  Tensor,
  type FeatureExtractionPipeline,
  type TextGenerationPipeline,
} from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TJS_DTYPES, tjsFileName, type TjsDtype } from '../src/flows/transformersjs.js';
import { convertFile } from '../src/flows/convert.js';
import { writeTransformersJs, type TransformersJsResult } from '../src/flows/transformersjs-file.js';
import { readNpy, writeNpy } from '../src/io/npy/npy.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { tjsModelFiles, writeTjsModel } from '../scripts/models/tjs-models.js';
import { REPO, runCli } from './helpers/cli.js';

/*
 * `quantkit transformersjs` proven with transformers.js itself: the two test model folders
 * (scripts/models/tjs-models.ts) get every dtype file, then transformers.js 4.x loads each from
 * the folder (no remote models) and runs text-generation on the char LM and feature-extraction
 * on the tiny encoder; outputs are compared with its fp32 run.
 */

const PROMPT = 'It is a truth universally acknowledged, that';
const NEW_TOKENS = 20;
const FOUR_BIT: readonly TjsDtype[] = ['q4', 'q4f16', 'bnb4'];

type Dtype = TjsDtype | 'fp32';
const ALL: readonly Dtype[] = ['fp32', ...TJS_DTYPES];

interface LmRun {
  text: string;
  logits: Float32Array;
}

/** Token embeddings of two sentences, one call each (the char tokenizer has no padding token). */
async function embed(fe: FeatureExtractionPipeline): Promise<Float32Array> {
  const parts: number[] = [];
  for (const s of ['Emma Woodhouse, handsome, clever, and rich', 'with a comfortable home'])
    parts.push(...((await fe(s)).data as Float32Array));
  return Float32Array.from(parts);
}

describe('quantkit transformersjs, checked with transformers.js', () => {
  let dir = '';
  let lmResult: TransformersJsResult;
  let bertResult: TransformersJsResult;
  const lm = new Map<Dtype, LmRun>();
  const embeddings = new Map<Dtype, Float32Array>();
  // Held-out text windows (models/lm-eval.npy), 64 ids each: the logits compared position by position.
  const evalWindows = readNpy(readFileSync(join(REPO, 'models', 'lm-eval.npy')));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qk-tjs-'));
    writeTjsModel('char-lm', REPO, join(dir, 'char-lm'));
    cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), join(dir, 'tiny-bert'), { recursive: true });
    lmResult = await writeTransformersJs(join(dir, 'char-lm'));
    bertResult = await writeTransformersJs(join(dir, 'tiny-bert'));

    env.allowRemoteModels = false;
    env.localModelPath = dir;
    const width = evalWindows.dims[1] as number;
    const [rows, T] = [2, width - 1];
    const ids = new BigInt64Array(rows * T);
    for (let r = 0; r < rows; r++)
      ids.set((evalWindows.data as BigInt64Array).subarray(r * width, r * width + T), r * T);
    const feeds = () => ({
      input_ids: new Tensor('int64', ids, [rows, T]),
      attention_mask: new Tensor('int64', new BigInt64Array(rows * T).fill(1n), [rows, T]),
    });
    for (const dtype of ALL) {
      const gen = (await pipeline('text-generation', 'char-lm', { dtype })) as TextGenerationPipeline;
      const out = (await gen(PROMPT, { max_new_tokens: NEW_TOKENS, do_sample: false })) as { generated_text: string }[];
      const { logits } = (await gen.model(feeds())) as { logits: { data: Float32Array } };
      lm.set(dtype, {
        text: (out[0] as { generated_text: string }).generated_text.slice(PROMPT.length),
        logits: Float32Array.from(logits.data),
      });
      await gen.dispose();
      const fe = (await pipeline('feature-extraction', 'tiny-bert', { dtype })) as FeatureExtractionPipeline;
      embeddings.set(dtype, await embed(fe));
      await fe.dispose();
    }
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the committed tiny-bert fixture is what its generator writes (deterministic)', () => {
    for (const [rel, content] of tjsModelFiles('tiny-bert', REPO)) {
      const committed = readFileSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert', rel));
      expect(Buffer.compare(committed, Buffer.from(content)), rel).toBe(0);
    }
  });

  it('writes every dtype file under transformers.js names, a table row each, config.json untouched', () => {
    for (const [name, r] of [
      ['char-lm', lmResult],
      ['tiny-bert', bertResult],
    ] as const) {
      expect(r.rows.map((x) => x.dtype)).toEqual(ALL);
      for (const d of TJS_DTYPES) expect(existsSync(join(dir, name, 'onnx', tjsFileName('model', d))), d).toBe(true);
      expect(r.configUpdated).toBe(false);
      expect(readFileSync(join(dir, name, 'config.json'))).toEqual(
        readFileSync(join(REPO, 'test', 'fixtures', 'transformersjs', name, 'config.json')),
      );
      for (const row of r.rows) expect(row.quality?.cosine, `${name} ${row.dtype}`).toBeGreaterThan(0.98);
    }
  });

  it('refuses to overwrite without force, and writes nothing', async () => {
    const q4 = join(dir, 'tiny-bert', 'onnx', 'model_q4.onnx');
    const before = statSync(q4).mtimeMs;
    await expect(writeTransformersJs(join(dir, 'tiny-bert'), { dtypes: ['fp16', 'q4'] })).rejects.toMatchObject({
      code: 'QK_OUTPUT_EXISTS',
    });
    expect(statSync(q4).mtimeMs).toBe(before);
  });

  it('q4f16: MatMulNBits run in fp16 (no Cast to fp32 before one, none after, no Cast pairs), inputs/outputs as fp32', () => {
    const types = (p: string) => {
      const g = decodeModel(readFileSync(p), p).graph;
      const io = [...(g?.input ?? []), ...(g?.output ?? [])].map((v) => {
        const t = v.type?.value.case === 'tensorType' ? v.type.value.value : undefined;
        return `${v.name}:${t?.elemType}`;
      });
      return { g, io };
    };
    const ref = types(join(dir, 'char-lm', 'onnx', 'model.onnx'));
    const { g, io } = types(join(dir, 'char-lm', 'onnx', 'model_q4f16.onnx'));
    const nodes = g?.node ?? [];
    const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
    const castTo = (n: (typeof nodes)[number] | undefined) =>
      n?.opType === 'Cast' ? Number(n.attribute.find((a) => a.name === 'to')?.i) : undefined;
    const nbits = nodes.filter((n) => n.opType === 'MatMulNBits');
    expect(nbits.length).toBe(13);
    expect(nbits.filter((n) => castTo(producer.get(n.input[0] as string)) === 1)).toEqual([]);
    expect(
      nodes.filter((n) => n.opType === 'Cast' && producer.get(n.input[0] as string)?.opType === 'MatMulNBits'),
    ).toEqual([]);
    expect(nodes.filter((n) => n.opType === 'Cast' && producer.get(n.input[0] as string)?.opType === 'Cast')).toEqual(
      [],
    );
    expect(io).toEqual(ref.io);
  });

  it('char LM in transformers.js: every dtype generates; fp16 and 8-bit give fp32’s greedy text, 4-bit its first 8 characters', () => {
    const fp32 = lm.get('fp32') as LmRun;
    expect(fp32.text).toHaveLength(NEW_TOKENS);
    for (const d of TJS_DTYPES) {
      const r = lm.get(d) as LmRun;
      expect(r.text, d).toHaveLength(NEW_TOKENS);
      if (FOUR_BIT.includes(d)) expect(r.text.slice(0, 8), d).toBe(fp32.text.slice(0, 8));
      else expect(r.text, d).toBe(fp32.text);
    }
  });

  it('char LM logits on held-out text vs fp32: cosine ≥ 0.999 / top-1 ≥ 97 % (fp16, 8-bit), ≥ 0.99 / ≥ 85 % (4-bit)', () => {
    const fp32 = (lm.get('fp32') as LmRun).logits;
    for (const d of TJS_DTYPES) {
      const q = rowCosineAndTop1(fp32, (lm.get(d) as LmRun).logits, 77);
      const four = FOUR_BIT.includes(d);
      expect(q.cosine, d).toBeGreaterThanOrEqual(four ? 0.99 : 0.999);
      expect(q.top1, d).toBeGreaterThanOrEqual(four ? 0.85 : 0.97);
    }
  });

  it('tiny encoder feature-extraction vs fp32: token embedding cosine ≥ 0.999 (fp16, 8-bit), ≥ 0.98 (4-bit)', () => {
    const fp32 = embeddings.get('fp32') as Float32Array;
    for (const d of TJS_DTYPES) {
      const q = rowCosineAndTop1(fp32, embeddings.get(d) as Float32Array, 64);
      expect(q.cosine, d).toBeGreaterThanOrEqual(FOUR_BIT.includes(d) ? 0.98 : 0.999);
    }
  });

  it('external data: model_q4.onnx_data written, config.json told, transformers.js loads it with the same result', async () => {
    const folder = join(dir, 'tiny-bert');
    const r = await writeTransformersJs(folder, { dtypes: ['q4'], externalThreshold: 0, force: true, quality: false });
    expect(r.rows[1]?.dataFile).toBe(join(folder, 'onnx', 'model_q4.onnx_data'));
    expect(r.configUpdated).toBe(true);
    const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config['transformers.js_config']).toEqual({ use_external_data_format: { 'model_q4.onnx': 1 } });
    expect(statSync(join(folder, 'onnx', 'model_q4.onnx')).size).toBeLessThan(0.25 * (bertResult.rows[5]?.bytes ?? 0));
    const fe = (await pipeline('feature-extraction', 'tiny-bert', { dtype: 'q4' })) as FeatureExtractionPipeline;
    expect(await embed(fe)).toEqual(embeddings.get('q4'));
    await fe.dispose();
  });

  it('--embeddings on: q4f16 with a GatherBlockQuantized table (in fp16) loads in transformers.js, cosine ≥ 0.98', async () => {
    const folder = join(dir, 'tiny-bert');
    const r = await writeTransformersJs(folder, { dtypes: ['q4f16'], embeddings: 'on', force: true });
    expect(r.rows[1]?.how).toContain('GatherBlockQuantized');
    const g = decodeModel(readFileSync(join(folder, 'onnx', 'model_q4f16.onnx')), 'q4f16').graph;
    expect(g?.node.filter((n) => n.opType === 'GatherBlockQuantized').length).toBeGreaterThan(0);
    const fe = (await pipeline('feature-extraction', 'tiny-bert', { dtype: 'q4f16' })) as FeatureExtractionPipeline;
    const q = rowCosineAndTop1(embeddings.get('fp32') as Float32Array, await embed(fe), 64);
    await fe.dispose();
    expect(q.cosine).toBeGreaterThanOrEqual(0.98);
  });

  it('a part with external data, its 4-bit weights on worker threads: the same files as on the main thread', async () => {
    const folder = join(dir, 'char-lm-external');
    writeTjsModel('char-lm', REPO, folder, ['onnx/model.onnx']);
    mkdirSync(join(folder, 'onnx'));
    await convertFile(join(dir, 'char-lm', 'onnx', 'model.onnx'), join(folder, 'onnx', 'model.onnx'), {
      externalData: true,
      dataNaming: 'onnx_data',
    });
    expect(existsSync(join(folder, 'onnx', 'model.onnx_data'))).toBe(true);
    const r = await writeTransformersJs(folder, { dtypes: ['q4'], pool: { threads: 2, fromBytes: 0 } });
    const file = tjsFileName('model', 'q4');
    expect(readFileSync(join(folder, 'onnx', file))).toEqual(readFileSync(join(dir, 'char-lm', 'onnx', file)));
    // The fp32 row counts the part's data file.
    const onnx = join(folder, 'onnx');
    expect(r.rows[0]?.bytes).toBe(
      statSync(join(onnx, 'model.onnx')).size + statSync(join(onnx, 'model.onnx_data')).size,
    );
  });

  it('GPTQ with --calib (8 LM calibration windows): q4 loads in transformers.js, logits top-1 ≥ 85 %', async () => {
    const folder = join(dir, 'char-lm');
    const calib = readNpy(readFileSync(join(REPO, 'models', 'lm-calib.npy')));
    const T = calib.dims[1] as number;
    const ids = join(dir, 'calib-ids.npy');
    writeFileSync(ids, writeNpy({ dtype: 'int64', dims: [8, T], data: (calib.data as BigInt64Array).slice(0, 8 * T) }));
    const r = await writeTransformersJs(folder, { dtypes: ['q4'], calib: [`input_ids=${ids}`], force: true });
    expect(r.rows[1]?.how).toContain('GPTQ');
    expect(r.rows[1]?.quality?.inputs).toContain('calibration rows');
    const gen = (await pipeline('text-generation', 'char-lm', { dtype: 'q4' })) as TextGenerationPipeline;
    const out = (await gen(PROMPT, { max_new_tokens: NEW_TOKENS, do_sample: false })) as { generated_text: string }[];
    expect((out[0] as { generated_text: string }).generated_text.length).toBe(PROMPT.length + NEW_TOKENS);
    expect(r.rows[1]?.quality?.top1).toBeGreaterThanOrEqual(0.85);
    await gen.dispose();
  });
});

describe('quantkit transformersjs (CLI)', () => {
  it('prints the size/quality table, then refuses to overwrite with exit 1 naming --force', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-tjs-cli-'));
    try {
      cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), dir, { recursive: true });
      const first = runCli(['transformersjs', dir, '--dtypes', 'q4,uint8']);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/model\s+q4\s+onnx\/model_q4\.onnx/);
      expect(first.stdout).toMatch(/model\s+uint8\s+onnx\/model_uint8\.onnx/);
      expect(first.stdout).toContain('quality vs fp32 in ONNX Runtime on 4 × 32 seeded random token ids');
      const again = runCli(['transformersjs', dir, '--dtypes', 'q4']);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('QK_OUTPUT_EXISTS');
      expect(again.stderr).toContain('--force');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('quantkit transformersjs: user errors name the file and the way out', () => {
  it('refuses a folder without config.json or onnx/ parts, a config that is not JSON, and calibration that is not token ids', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-tjs-err-'));
    try {
      await expect(writeTransformersJs(dir)).rejects.toMatchObject({ code: 'QK_TJS_NOT_A_MODEL_FOLDER' });
      cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), dir, { recursive: true });
      rmSync(join(dir, 'onnx', 'model.onnx'));
      await expect(writeTransformersJs(dir)).rejects.toMatchObject({
        code: 'QK_TJS_NOT_A_MODEL_FOLDER',
        message: expect.stringContaining('holds no fp32 part') as unknown,
      });
      cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), dir, { recursive: true });
      writeFileSync(join(dir, 'config.json'), '{"model_type": "bert",');
      await expect(writeTransformersJs(dir)).rejects.toMatchObject({ code: 'QK_TJS_BAD_CONFIG' });
      cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), dir, { recursive: true });
      const floats = join(dir, 'floats.npy');
      writeFileSync(floats, writeNpy({ dtype: 'float32', dims: [2, 8], data: new Float32Array(16) }));
      await expect(writeTransformersJs(dir, { dtypes: ['q4'], calib: [`input_ids=${floats}`] })).rejects.toMatchObject({
        code: 'QK_TJS_BAD_CALIB',
      });
      expect(existsSync(join(dir, 'onnx', 'model_q4.onnx'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('quantkit transformersjs interrupted (SIGINT)', () => {
  it('leaves only finished files: no temp file, every .onnx present loads, exit 130', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qk-tjs-int-'));
    try {
      cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), dir, { recursive: true });
      const onnx = join(dir, 'onnx');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(REPO, 'src/cli/bin.ts'), 'transformersjs', dir, '--dtypes', 'fp16,q8,q4'],
        { cwd: REPO, env: { ...process.env, QK_DEBUG: '' }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
      // The second file's temp: the first (fp16) is finished by then.
      await new Promise<void>((done) => {
        const w = watch(onnx, (_e, name) => {
          if (name?.startsWith('.model_quantized.onnx.') && name.endsWith('.tmp')) {
            w.close();
            done();
          }
        });
      });
      child.kill('SIGSTOP');
      child.kill('SIGINT');
      child.kill('SIGCONT');
      expect(await exited, stderr).toBe(130);
      const left = readdirSync(onnx);
      expect(
        left.filter((n) => n.endsWith('.tmp')),
        JSON.stringify(left) + stderr,
      ).toEqual([]);
      expect(left).toContain('model_fp16.onnx');
      expect(left).not.toContain('model_q4.onnx');
      for (const f of left.filter((n) => n.endsWith('.onnx')))
        await (await ort.InferenceSession.create(join(onnx, f))).release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

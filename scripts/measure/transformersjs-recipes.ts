// `quantkit transformersjs` against the former transformers.js conversion script's recipe
// (scripts/quantize.py + convert.py, reproduced with our schemes: q4 round-to-nearest, q8/int8
// per-tensor full-range s8 for gpt2-type models and per-channel seven-bit for the others, fp16
// with LayerNormalization/Softmax in fp16), side by side, per test model and dtype:
//   size; quality in transformers.js on held-out text (models/lm-eval.npy, 8 windows): the char
//   LM's bits per character and top-1 agreement with fp32, the encoder's token-embedding cosine
//   with fp32; q8/int8/uint8 also in ONNX Runtime on an AVX2-only CPU (qemu -cpu Haswell,
//   test/helpers/ort-avx2.ts) where full-range u8×s8 products saturate; and transformers.js
//   load + first token time (pipeline creation and one generated token / one embedding), median
//   of interleaved runs.
// `npx tsx scripts/measure/transformersjs-recipes.ts [--no-avx2] [--runs N]`
import { rowCosineAndTop1 } from '../../src/quant/metrics.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  env,
  pipeline,
  Tensor,
  type FeatureExtractionPipeline,
  type TextGenerationPipeline,
} from '@huggingface/transformers';
import { TJS_DTYPES, tjsFileName, type TjsDtype, type TjsRecipe } from '../../src/flows/transformersjs.js';
import { writeTransformersJs, type TjsRow } from '../../src/flows/transformersjs-file.js';
import { readNpy } from '../../src/io/npy/npy.js';
import type { Tensor as QkTensor } from '../../src/tensor/tensor.js';
import { qemuAvailable, runOrtAvx2 } from '../../test/helpers/ort-avx2.js';
import { writeTjsModel, type TjsModelName } from '../models/tjs-models.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const RUNS = Number(process.argv[process.argv.indexOf('--runs') + 1] ?? 0) || 3;
const AVX2 = !process.argv.includes('--no-avx2') && qemuAvailable();
interface Variant {
  readonly label: string;
  readonly recipe: TjsRecipe;
  /** GPTQ on the LM's calibration windows (training text, disjoint from the eval windows). */
  readonly calib: boolean;
  readonly dtypes: readonly TjsDtype[];
}
const VARIANTS: readonly Variant[] = [
  { label: 'former script', recipe: 'legacy', calib: false, dtypes: TJS_DTYPES },
  { label: 'quantkit', recipe: 'quantkit', calib: false, dtypes: TJS_DTYPES },
  { label: 'quantkit --calib', recipe: 'quantkit', calib: true, dtypes: ['q4', 'q4f16', 'bnb4'] },
];
const CALIB = `input_ids=${join(ROOT, 'models', 'lm-calib.npy')}`;
const DTYPES: readonly (TjsDtype | 'fp32')[] = ['fp32', ...TJS_DTYPES];
const PROMPT = 'It is a truth universally acknowledged, that';
const VOCAB = 77;

const evalWindows = readNpy(readFileSync(join(ROOT, 'models', 'lm-eval.npy')));
const W = evalWindows.dims[1] as number;
const ROWS = 8;
const T = W - 1;
const ids = new BigInt64Array(ROWS * T);
const targets = new Int32Array(ROWS * T);
for (let r = 0; r < ROWS; r++)
  for (let t = 0; t < T; t++) {
    ids[r * T + t] = (evalWindows.data as BigInt64Array)[r * W + t] as bigint;
    targets[r * T + t] = Number((evalWindows.data as BigInt64Array)[r * W + t + 1]);
  }
const ones = () => new BigInt64Array(ROWS * T).fill(1n);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const cosine = (a: Float32Array, b: Float32Array, width: number): number => rowCosineAndTop1(a, b, width).cosine;
const top1 = (a: Float32Array, b: Float32Array, width: number): number => rowCosineAndTop1(a, b, width).top1;

/** Mean next-character cross entropy in bits over every position. */
function bitsPerChar(logits: Float32Array): number {
  let sum = 0;
  for (let p = 0; p < targets.length; p++) {
    let max = -Infinity;
    for (let j = 0; j < VOCAB; j++) max = Math.max(max, logits[p * VOCAB + j] as number);
    let z = 0;
    for (let j = 0; j < VOCAB; j++) z += Math.exp((logits[p * VOCAB + j] as number) - max);
    sum += Math.log(z) + max - (logits[p * VOCAB + (targets[p] as number)] as number);
  }
  return sum / targets.length / Math.LN2;
}

/** The eval windows as the part's ORT feeds (empty key/value cache for the LM). */
function ortFeeds(model: TjsModelName): Record<string, QkTensor> {
  const int = (data: BigInt64Array): QkTensor => ({ dtype: 'int64', dims: [ROWS, T], data });
  if (model === 'tiny-bert')
    return { input_ids: int(ids), attention_mask: int(ones()), token_type_ids: int(new BigInt64Array(ROWS * T)) };
  const pos = new BigInt64Array(ROWS * T);
  for (let r = 0; r < ROWS; r++) for (let t = 0; t < T; t++) pos[r * T + t] = BigInt(t);
  const feeds: Record<string, QkTensor> = { input_ids: int(ids), attention_mask: int(ones()), position_ids: int(pos) };
  for (let i = 0; i < 2; i++)
    for (const kind of ['key', 'value'])
      feeds[`past_key_values.${i}.${kind}`] = { dtype: 'float32', dims: [ROWS, 4, 0, 32], data: new Float32Array(0) };
  return feeds;
}

interface Measured {
  row: TjsRow;
  output: Float32Array;
  ms: number[];
  avx2: Float32Array | undefined;
}

async function runOnce(
  model: TjsModelName,
  dir: string,
  dtype: TjsDtype | 'fp32',
): Promise<{ ms: number; out: Float32Array }> {
  env.localModelPath = dir;
  const t0 = performance.now();
  if (model === 'char-lm') {
    const gen = (await pipeline('text-generation', model, { dtype })) as TextGenerationPipeline;
    await gen(PROMPT, { max_new_tokens: 1, do_sample: false });
    const ms = performance.now() - t0;
    const { logits } = (await gen.model({
      input_ids: new Tensor('int64', ids, [ROWS, T]),
      attention_mask: new Tensor('int64', ones(), [ROWS, T]),
    })) as { logits: { data: Float32Array } };
    const out = Float32Array.from(logits.data);
    await gen.dispose();
    return { ms, out };
  }
  const fe = (await pipeline('feature-extraction', model, { dtype })) as FeatureExtractionPipeline;
  await fe('Emma Woodhouse, handsome, clever, and rich');
  const ms = performance.now() - t0;
  const { last_hidden_state } = (await fe.model({
    input_ids: new Tensor('int64', ids, [ROWS, T]),
    attention_mask: new Tensor('int64', ones(), [ROWS, T]),
    token_type_ids: new Tensor('int64', new BigInt64Array(ROWS * T), [ROWS, T]),
  })) as { last_hidden_state: { data: Float32Array } };
  const out = Float32Array.from(last_hidden_state.data);
  await fe.dispose();
  return { ms, out };
}

env.allowRemoteModels = false;
const work = mkdtempSync(join(tmpdir(), 'qk-tjs-measure-'));
const lines: string[] = [];
try {
  for (const model of ['char-lm', 'tiny-bert'] as const) {
    const dirs = new Map<string, string>();
    const rows = new Map<string, TjsRow>();
    for (const [i, v] of VARIANTS.entries()) {
      const dir = join(work, `variant-${i}`);
      dirs.set(v.label, dir);
      writeTjsModel(model, ROOT, join(dir, model));
      const r = await writeTransformersJs(join(dir, model), {
        recipe: v.recipe,
        dtypes: v.dtypes,
        quality: false,
        ...(v.calib ? { calib: [CALIB] } : {}),
      });
      for (const row of r.rows) rows.set(`${v.label}/${row.dtype}`, row);
    }
    const measured = new Map<string, Measured>();
    const labelsFor = (dtype: TjsDtype | 'fp32') =>
      dtype === 'fp32' ? ['quantkit'] : VARIANTS.filter((v) => v.dtypes.includes(dtype)).map((v) => v.label);
    for (const dtype of DTYPES) {
      const labels = labelsFor(dtype);
      for (let run = 0; run < RUNS + 1; run++) {
        for (const label of labels) {
          const key = `${label}/${dtype}`;
          const { ms, out } = await runOnce(model, dirs.get(label) as string, dtype);
          const m = measured.get(key) ?? { row: rows.get(key) as TjsRow, output: out, ms: [], avx2: undefined };
          if (run > 0) m.ms.push(ms); // the first run warms the file cache
          measured.set(key, m);
        }
      }
      if (AVX2 && (dtype === 'q8' || dtype === 'int8' || dtype === 'uint8'))
        for (const label of labels) {
          const m = measured.get(`${label}/${dtype}`) as Measured;
          const file = join(dirs.get(label) as string, model, 'onnx', tjsFileName('model', dtype));
          const out = runOrtAvx2(readFileSync(file), ortFeeds(model));
          m.avx2 = (out[model === 'char-lm' ? 'logits' : 'last_hidden_state'] as QkTensor).data as Float32Array;
        }
    }
    const ref = measured.get('quantkit/fp32') as Measured;
    const width = model === 'char-lm' ? VOCAB : 64;
    lines.push('');
    lines.push(
      model === 'char-lm'
        ? `### char LM (fp32 ${(ref.row.bytes / 1024).toFixed(0)} KiB): held-out bits/char (fp32 ${bitsPerChar(ref.output).toFixed(4)}), top-1 agreement with fp32, both in transformers.js; AVX2 = ORT under qemu -cpu Haswell`
        : `### tiny encoder (fp32 ${(ref.row.bytes / 1024).toFixed(0)} KiB): token-embedding cosine with fp32 on held-out text, in transformers.js; AVX2 = ORT under qemu -cpu Haswell`,
    );
    lines.push('');
    lines.push('| dtype | recipe | size | ratio | quality | top-1 | AVX2 quality | load + first token |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const dtype of DTYPES) {
      for (const label of labelsFor(dtype)) {
        const m = measured.get(`${label}/${dtype}`) as Measured;
        const quality =
          model === 'char-lm' ? bitsPerChar(m.output).toFixed(4) : cosine(ref.output, m.output, width).toFixed(5);
        const avx2 =
          m.avx2 === undefined
            ? '—'
            : model === 'char-lm'
              ? `${bitsPerChar(m.avx2).toFixed(4)} (top-1 ${(100 * top1(ref.output, m.avx2, width)).toFixed(1)} %)`
              : cosine(ref.output, m.avx2, width).toFixed(5);
        const agreement = model === 'char-lm' ? `${(100 * top1(ref.output, m.output, width)).toFixed(1)} %` : '—';
        lines.push(
          `| ${dtype} | ${dtype === 'fp32' ? '—' : label} | ${(m.row.bytes / 1024).toFixed(1)} KiB | ${m.row.ratio.toFixed(3)} | ${quality} | ${agreement} | ${avx2} | ${median(m.ms).toFixed(0)} ms |`,
        );
      }
    }
  }
  console.log(lines.join('\n'));
  console.log(
    `\n${RUNS} timed runs per file after one warm-up, interleaved between recipes; median. Machine shared with other jobs (2 cores): times are noisy, compare within a row pair.`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

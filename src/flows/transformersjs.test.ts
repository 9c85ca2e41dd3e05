import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { modelFromProto } from '../graph/from-onnx.js';
import { makeModel } from '../io/onnx/build.js';
import { quantizeDynamic } from '../passes/activation/dynamic.js';
import { dataFileName } from '../node/model-writer.js';
import { mulberry32 } from '../quant/prng.js';
import {
  parseTjsDtypes,
  partOfFile,
  rewriteForDtype,
  TJS_DTYPES,
  TJS_SUFFIX,
  tjsFileName,
  updateTjsConfig,
  type TjsDtype,
  type TjsRecipe,
} from './transformersjs.js';

/*
 * The file conventions against transformers.js's own sources (the loader quantkit writes for):
 * its dtype → suffix table, how it resolves use_external_data_format per file, and its data file
 * names.
 */
const TJS_SRC = join(process.cwd(), 'node_modules', '@huggingface', 'transformers', 'src');
const tjs = async <T>(file: string): Promise<T> => (await import(pathToFileURL(join(TJS_SRC, file)).href)) as T;

interface Dtypes {
  DEFAULT_DTYPE_SUFFIX_MAPPING: Record<string, string>;
}
interface Loader {
  resolveExternalDataFormat(config: unknown, fullName: string, fileName: string): number;
  getExternalDataChunkNames(fullName: string, n: number): string[];
}

describe('transformers.js file conventions, checked against its loader', () => {
  it("suffixes equal transformers.js's DEFAULT_DTYPE_SUFFIX_MAPPING; files of any of its dtypes are not taken for parts", async () => {
    const { DEFAULT_DTYPE_SUFFIX_MAPPING: mapping } = await tjs<Dtypes>('utils/dtypes.js');
    for (const d of [...TJS_DTYPES, 'fp32' as const]) expect(TJS_SUFFIX[d]).toBe(mapping[d]);
    for (const suffix of Object.values(mapping)) {
      const file = `decoder_model_merged${suffix}.onnx`;
      expect(partOfFile(file)).toBe(suffix === '' ? 'decoder_model_merged' : undefined);
    }
    expect(partOfFile('model.onnx_data')).toBeUndefined();
    expect(tjsFileName('encoder_model', 'q8')).toBe('encoder_model_quantized.onnx');
    expect(parseTjsDtypes(['q4', 'fp16', 'q4'])).toEqual(['q4', 'fp16']);
    expect(() => parseTjsDtypes(['q3'])).toThrow("unknown transformers.js dtype 'q3'");
  });

  it('the data file written beside X.onnx is the first chunk name the loader asks for', async () => {
    const { getExternalDataChunkNames } = await tjs<Loader>('utils/model-loader.js');
    for (const f of ['model_q4.onnx', 'decoder_model_merged_q4f16.onnx'])
      expect(dataFileName(f, 'onnx_data')).toBe(getExternalDataChunkNames(f, 1)[0]);
  });

  it('use_external_data_format: every written file resolves to its chunk count, every other file as before, other keys kept', async () => {
    const { resolveExternalDataFormat: resolve } = await tjs<Loader>('utils/model-loader.js');
    const others = ['model.onnx', 'model_fp16.onnx', 'encoder_model.onnx'];
    const partOf = (f: string) => f.replace(/\.onnx$/, '').replace(/_(fp16|q4|q4f16|quantized)$/, '');
    const cases: { before: unknown; written: { file: string; part: string; chunks: number }[] }[] = [
      { before: undefined, written: [{ file: 'model_q4.onnx', part: 'model', chunks: 1 }] },
      { before: true, written: [{ file: 'model_q4.onnx', part: 'model', chunks: 0 }] },
      { before: 2, written: [{ file: 'model_q4.onnx', part: 'model', chunks: 1 }] },
      { before: { model: 1 }, written: [{ file: 'model_q4.onnx', part: 'model', chunks: 0 }] },
      {
        before: { 'model_q4.onnx': 3, encoder_model: 1 },
        written: [
          { file: 'model_q4.onnx', part: 'model', chunks: 0 },
          { file: 'encoder_model_q4.onnx', part: 'encoder_model', chunks: 0 },
        ],
      },
    ];
    for (const { before, written } of cases) {
      const config = {
        model_type: 'llama',
        layer_norm_eps: 1e-5,
        'transformers.js_config': {
          dtype: 'q4',
          ...(before === undefined ? {} : { use_external_data_format: before }),
        },
        eos_token_id: [1, 2],
      };
      const text = updateTjsConfig(JSON.stringify(config, null, 2), written, others);
      expect(text).toBeDefined();
      const after = JSON.parse(text as string) as typeof config & { 'transformers.js_config': Record<string, unknown> };
      const value = after['transformers.js_config']['use_external_data_format'];
      for (const w of written) expect(resolve(value, w.file, w.part)).toBe(w.chunks);
      for (const f of others) expect(resolve(value, f, partOf(f))).toBe(resolve(before, f, partOf(f)));
      expect({ ...after, 'transformers.js_config': { dtype: 'q4' } }).toEqual({
        ...config,
        'transformers.js_config': { dtype: 'q4' },
      });
      expect(after['transformers.js_config']['dtype']).toBe('q4');
      // Already what the loader would read: no rewrite.
      expect(updateTjsConfig(text as string, written, others)).toBeUndefined();
    }
    expect(
      updateTjsConfig('{"model_type": "bert"}', [{ file: 'model_q4.onnx', part: 'model', chunks: 0 }], []),
    ).toBeUndefined();
  });
});

/** x [1, 8] → MatMul(W [8, 4]) → y, with a 1×1 Conv on a second input when `conv`. */
function tinyModel(conv: boolean) {
  const rand = mulberry32(3);
  const t = (dims: number[]) => ({
    dtype: 'float32' as const,
    dims,
    data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() - 0.5),
  });
  return modelFromProto(
    makeModel({
      nodes: [
        { opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], name: 'mm' },
        ...(conv ? [{ opType: 'Conv', inputs: ['img', 'k'], outputs: ['z'], name: 'conv' }] : []),
      ],
      inputs: [
        { name: 'x', dtype: 'float32', dims: [1, 8] },
        ...(conv ? [{ name: 'img', dtype: 'float32' as const, dims: [1, 2, 4, 4] }] : []),
      ],
      outputs: [
        { name: 'y', dtype: 'float32', dims: [1, 4] },
        ...(conv ? [{ name: 'z', dtype: 'float32' as const, dims: [1, 2, 4, 4] }] : []),
      ],
      initializers: { w: t([8, 4]), ...(conv ? { k: t([2, 2, 1, 1]) } : {}) },
      opsets: { '': 17 },
    }),
  );
}

describe('8-bit dtypes: weight types as the former script chose them', () => {
  it('q8 takes u8 weights when the model has a Conv (its QUINT8_OPS), s8 otherwise; int8/uint8 force the type', () => {
    const weightType = (conv: boolean, dtype: TjsDtype, recipe: TjsRecipe) => {
      const m = tinyModel(conv);
      rewriteForDtype(m, dtype, { recipe, modelType: 'bert' });
      return m.graph.initializers.get('w_quantized')?.dtype;
    };
    for (const recipe of ['quantkit', 'legacy'] as const) {
      expect(weightType(false, 'q8', recipe)).toBe('int8');
      expect(weightType(true, 'q8', recipe)).toBe('uint8');
      expect(weightType(true, 'int8', recipe)).toBe('int8');
      expect(weightType(false, 'uint8', recipe)).toBe('uint8');
    }
  });

  it('u8 weights with per-token (s8) activations are refused: MatMulInteger has no s8 × u8', () => {
    expect(() => quantizeDynamic(tinyModel(false), { weightType: 'uint8', perToken: true })).toThrow(
      expect.objectContaining({ code: 'QK_BAD_OPTION' }) as Error,
    );
  });

  it('legacy: per-tensor full range for gpt2-type models, per-channel seven-bit otherwise', () => {
    const codes = (modelType: string) => {
      const m = tinyModel(false);
      rewriteForDtype(m, 'int8', { recipe: 'legacy', modelType });
      const scale = m.graph.initializers.get('w_scale')?.load().data as Float32Array;
      const q = m.graph.initializers.get('w_quantized')?.load().data as Int8Array;
      return { scales: new Set(scale), max: Math.max(...q.map(Math.abs)) };
    };
    expect(codes('gpt2').scales.size).toBe(1);
    expect(codes('gpt2').max).toBe(127);
    expect(codes('bert').scales.size).toBe(4);
    expect(codes('bert').max).toBe(64);
  });
});

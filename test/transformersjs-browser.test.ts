import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { env, pipeline, type FeatureExtractionPipeline, type TextGenerationPipeline } from '@huggingface/transformers';
import { build } from 'esbuild';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TJS_DTYPES } from '../src/flows/transformersjs.js';
import { writeTransformersJs } from '../src/flows/transformersjs-file.js';
import { writeTjsModel } from '../scripts/models/tjs-models.js';
import { REPO } from './helpers/cli.js';

/*
 * Every dtype file `quantkit transformersjs` writes, loaded by transformers.js in headless
 * Chromium (Debian's chromium driven by playwright-core) on onnxruntime-web's WebAssembly
 * backend: a page bundled by esbuild from @huggingface/transformers' browser build, its model
 * folders and ORT's .wasm (its CPU SIMD build) served by request interception (no network: anything else is refused
 * and listed). The encoder's files all carry external data (X.onnx_data, fetched by
 * transformers.js because config.json says so) and its q4/q4f16 embedding tables are
 * GatherBlockQuantized; the LM's files are self-contained.
 */

const CHROMIUM = '/usr/bin/chromium';
const PROMPT = 'It is a truth universally acknowledged, that';
const SENTENCE = 'Emma Woodhouse, handsome, clever, and rich';
const ORT_DIST = join(REPO, 'node_modules', '@huggingface', 'transformers', 'node_modules', 'onnxruntime-web', 'dist');
const DTYPES = ['fp32', ...TJS_DTYPES] as const;
const FOUR_BIT = ['q4', 'q4f16', 'bnb4'];
const ORIGIN = 'http://localhost:8123';

const PAGE = `
import { env, pipeline } from '@huggingface/transformers';
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/models/';
env.useBrowserCache = false;
// ORT's plain SIMD build (14 MB) rather than the asyncify one transformers.js picks for WebGPU
// (27 MB): the same CPU kernels, half the compile time.
env.backends.onnx.wasm.wasmPaths = { mjs: '/ort/ort-wasm-simd-threaded.mjs', wasm: '/ort/ort-wasm-simd-threaded.wasm' };
window.runDtype = async (dtype) => {
  const gen = await pipeline('text-generation', 'char-lm', { dtype, device: 'wasm' });
  const g = await gen(${JSON.stringify(PROMPT)}, { max_new_tokens: 20, do_sample: false });
  await gen.dispose();
  const fe = await pipeline('feature-extraction', 'tiny-bert', { dtype, device: 'wasm' });
  const e = await fe(${JSON.stringify(SENTENCE)});
  await fe.dispose();
  return { text: g[0].generated_text.slice(${PROMPT.length}), embedding: Array.from(e.data) };
};
`;

const CONTENT_TYPES: Record<string, string> = {
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

interface BrowserRun {
  text: string;
  embedding: number[];
}

describe('transformers.js in headless Chromium (onnxruntime-web WASM) loads every dtype quantkit writes', () => {
  let context: BrowserContext | undefined;
  let profile = '';
  let dir = '';
  const refused: string[] = [];
  const errors: string[] = [];
  const runs = new Map<string, BrowserRun | string>();
  let node: BrowserRun;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: install Debian's browser with 'apt-get install -y chromium' (.ci/run does it)`,
      );
    dir = mkdtempSync(join(tmpdir(), 'qk-tjs-web-'));
    writeTjsModel('char-lm', REPO, join(dir, 'char-lm'));
    cpSync(join(REPO, 'test', 'fixtures', 'transformersjs', 'tiny-bert'), join(dir, 'tiny-bert'), { recursive: true });
    await writeTransformersJs(join(dir, 'char-lm'), { quality: false });
    await writeTransformersJs(join(dir, 'tiny-bert'), { quality: false, externalThreshold: 0, embeddings: 'on' });

    // fp32 in Node (onnxruntime-node), the reference for the page's fp32.
    env.allowRemoteModels = false;
    env.localModelPath = dir;
    const gen = (await pipeline('text-generation', 'char-lm', { dtype: 'fp32' })) as TextGenerationPipeline;
    const g = (await gen(PROMPT, { max_new_tokens: 20, do_sample: false })) as { generated_text: string }[];
    await gen.dispose();
    const fe = (await pipeline('feature-extraction', 'tiny-bert', { dtype: 'fp32' })) as FeatureExtractionPipeline;
    const e = await fe(SENTENCE);
    await fe.dispose();
    node = {
      text: (g[0] as { generated_text: string }).generated_text.slice(PROMPT.length),
      embedding: Array.from(e.data as Float32Array),
    };

    const bundled = await build({
      stdin: { contents: PAGE, resolveDir: REPO, loader: 'js' },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'error',
    });
    const app = bundled.outputFiles[0]?.text ?? '';
    profile = mkdtempSync(join(tmpdir(), 'qk-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    await context.route('**/*', async (route) => {
      const url = new URL(route.request().url());
      if (url.origin === ORIGIN && url.pathname === '/')
        return route.fulfill({
          body: '<!doctype html><script type="module" src="/app.js"></script>',
          contentType: 'text/html',
        });
      if (url.origin === ORIGIN && url.pathname === '/app.js')
        return route.fulfill({ body: app, contentType: 'text/javascript' });
      // onnxruntime-web's .wasm/.mjs from the copy transformers.js depends on.
      const file =
        url.origin === ORIGIN && url.pathname.startsWith('/ort/')
          ? join(ORT_DIST, url.pathname.slice('/ort/'.length))
          : url.origin === ORIGIN && url.pathname.startsWith('/models/')
            ? join(dir, decodeURIComponent(url.pathname.slice('/models/'.length)))
            : undefined;
      if (file && existsSync(file))
        return route.fulfill({
          body: readFileSync(file),
          contentType: CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
        });
      refused.push(url.href);
      return route.fulfill({ status: 404, body: '' });
    });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${ORIGIN}/`);
    await page.waitForFunction(() => typeof (window as unknown as { runDtype?: unknown }).runDtype === 'function');
    for (const dtype of DTYPES) {
      const r = await page
        .evaluate((d) => (window as unknown as { runDtype: (d: string) => Promise<BrowserRun> }).runDtype(d), dtype)
        .catch((e: unknown) => String(e));
      runs.set(dtype, r);
    }
  });

  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every dtype loads and runs in the page, with nothing fetched from outside', () => {
    for (const dtype of DTYPES) expect(typeof runs.get(dtype) === 'string' ? runs.get(dtype) : 'ok', dtype).toBe('ok');
    expect(errors).toEqual([]);
    // A missing optional file (e.g. a generation_config the encoder has none of) is asked for and refused; nothing else.
    expect(refused.filter((u) => !u.endsWith('/tiny-bert/generation_config.json'))).toEqual([]);
  });

  it('fp32 in the browser matches Node: same greedy text, embedding cosine ≥ 0.99999', () => {
    const web = runs.get('fp32') as BrowserRun;
    expect(web.text).toBe(node.text);
    expect(cosine(web.embedding, node.embedding)).toBeGreaterThanOrEqual(0.99999);
  });

  it('quantized in the browser vs its fp32: fp16/8-bit greedy text equal, 4-bit its first 8 characters; embedding cosine ≥ 0.999 / ≥ 0.98', () => {
    const fp32 = runs.get('fp32') as BrowserRun;
    for (const dtype of TJS_DTYPES) {
      const r = runs.get(dtype) as BrowserRun;
      const four = FOUR_BIT.includes(dtype);
      expect(r.text, dtype).toHaveLength(20);
      if (four) expect(r.text.slice(0, 8), dtype).toBe(fp32.text.slice(0, 8));
      else expect(r.text, dtype).toBe(fp32.text);
      expect(cosine(r.embedding, fp32.embedding), dtype).toBeGreaterThanOrEqual(four ? 0.98 : 0.999);
    }
  });
});

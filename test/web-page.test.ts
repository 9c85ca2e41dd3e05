import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeActivationFile } from '../src/flows/activation-file.js';
import { convertFile } from '../src/flows/convert.js';
import { lmPerplexity } from '../src/flows/evaluate.js';
import { quantizeFile } from '../src/flows/quantize-file.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel } from '../src/io/onnx/proto.js';
import { tensorFromProto } from '../src/io/onnx/tensor.js';
import { readOnnxFileInlined } from '../src/node/model-file.js';
import { nodeRuntime } from '../src/node/ort-runtime.js';
import { serveWeb, type WebServer } from '../src/node/web-server.js';
import { launchChromium, requireChromium } from './helpers/chromium.js';
import { REPO, runCli } from './helpers/cli.js';

/*
 * The web page (scripts/build-web.mjs, served by `quantkit web`'s serveWeb) in Debian's headless
 * Chromium: the shipped LM picked in the file input, quantized to q4 with the page's buttons,
 * compared, downloaded; the download is byte for byte `quantkit quantize`'s output and scores
 * the same perplexity in onnxruntime-node. Then window.quantkit on the CNN (int8, nf4,
 * int8-dynamic), byte-identical to the CLI's file-to-file path. No console error, no request
 * leaving the page's origin; screenshots at desktop and phone width in test-output/.
 */

/** The part of window.quantkit these checks call. */
interface PageApi {
  quantizeModelBytes(
    bytes: Uint8Array,
    options: { scheme: string; calib?: Blob | undefined },
  ): Promise<{ bytes: Uint8Array }>;
  quantize(bytes: Uint8Array, options: { scheme: string }): Promise<{ model: Blob }>;
  cancel(): void;
  compare(a: Uint8Array, b: Uint8Array): Promise<{ outputs: { top1Agreement: number; sqnrDb: number }[] }>;
}

/**
 * int8-static calibrates by running the model in ONNX Runtime: onnxruntime-web's WebAssembly
 * kernels sum in another order than onnxruntime-node's native ones, so an activation range can
 * differ in its last float32 bit and so the scales derived from it. Everything else is the same:
 * the graph, every integer tensor (weights, zero points, int32 biases), and floats to 2^-20.
 */
function expectSameUpToUlps(page: Uint8Array, cli: Uint8Array): void {
  const a = decodeModel(page, 'page');
  const b = decodeModel(cli, 'cli');
  const nodes = (m: typeof a) =>
    (m.graph?.node ?? []).map((n) => `${n.opType}(${n.input.join(',')})->${n.output.join(',')}`);
  expect(nodes(a)).toEqual(nodes(b));
  const cliTensors = new Map((b.graph?.initializer ?? []).map((t) => [t.name, tensorFromProto(t)]));
  let floatsDiffering = 0;
  for (const p of a.graph?.initializer ?? []) {
    const x = tensorFromProto(p);
    const y = cliTensors.get(p.name);
    expect(y?.dtype, p.name).toBe(x.dtype);
    const xd = x.data as ArrayLike<number | bigint>;
    const yd = y?.data as ArrayLike<number | bigint>;
    expect(yd.length, p.name).toBe(xd.length);
    for (let i = 0; i < xd.length; i++) {
      if (x.dtype !== 'float32') {
        expect(xd[i], `${p.name}[${i}]`).toBe(yd[i]);
        continue;
      }
      const u = xd[i] as number;
      const v = yd[i] as number;
      if (u !== v) floatsDiffering++;
      expect(Math.abs(u - v), `${p.name}[${i}]`).toBeLessThanOrEqual(Math.abs(v) * 2 ** -20);
    }
  }
  expect(floatsDiffering).toBeLessThan(100);
}

const OUT = join(REPO, 'test-output');
const MODELS = join(REPO, 'models');

describe('web page in headless Chromium', () => {
  let context: BrowserContext | undefined;
  let web: WebServer | undefined;
  let page: Page;
  let tmp = '';
  const errors: string[] = [];
  const outside: string[] = [];

  beforeAll(async () => {
    requireChromium();
    tmp = mkdtempSync(join(tmpdir(), 'qk-web-'));
    const site = join(tmp, 'site');
    const built = spawnSync(process.execPath, [join(REPO, 'scripts/build-web.mjs'), site], { encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`build-web failed: ${built.stderr}`);
    web = await serveWeb({ root: site, port: 0 });
    mkdirSync(OUT, { recursive: true });
    context = await launchChromium(join(tmp, 'profile'), { acceptDownloads: true });
    const origin = web.url;
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
      outside.push(url);
      return route.abort();
    });
    page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      if (r.url().startsWith(origin)) errors.push(`request failed: ${r.url()}`);
    });
    await page.goto(web.url);
    await page.waitForSelector('body[data-ready]');
  });

  afterAll(async () => {
    await context?.close();
    await web?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('LM → q4 with the buttons: the download equals `quantkit quantize --scheme q4` byte for byte, same perplexity', async () => {
    const cliOut = join(tmp, 'lm-q4-cli.onnx');
    const cli = runCli(['quantize', join(MODELS, 'lm.onnx'), '--scheme', 'q4', '-o', cliOut]);
    expect(cli.code, cli.stderr).toBe(0);

    await page.setInputFiles('#model-files', join(MODELS, 'lm.onnx'));
    await page.waitForSelector('#inspect:not([hidden])');
    expect(await page.innerText('#inspect')).toContain('input_ids int64[batch, seq]');
    await page.selectOption('#scheme', 'q4');
    await page.setInputFiles('#calib', join(MODELS, 'lm-calib.npy'));
    await page.click('#quantize');
    await page.waitForSelector('#report:not([hidden])');
    const report = await page.innerText('#report');
    expect(report).toContain('MatMulNBits');
    expect(report).toContain('/blocks.0/attn/q/MatMul');

    // Compare on the calibration windows in onnxruntime-web.
    await page.click('#compare');
    await page.waitForSelector('#comparison:not([hidden])');
    const comparison = await page.innerText('#comparison');
    expect(comparison).toContain('32 calibration samples');
    const sqnr = Number(/logits\s+([0-9.]+)/.exec(comparison)?.[1]);
    expect(sqnr).toBeGreaterThan(10);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe('lm-q4.onnx');
    const fromPage = readFileSync((await download.path()) as string);
    const fromCli = readFileSync(cliOut);
    expect(fromPage.length).toBe(fromCli.length);
    expect(fromPage.equals(fromCli)).toBe(true);

    const windows = readNpy(readFileSync(join(MODELS, 'lm-eval.npy')));
    const pagePpl = await lmPerplexity(nodeRuntime, new Uint8Array(fromPage), windows);
    const cliPpl = await lmPerplexity(nodeRuntime, new Uint8Array(fromCli), windows);
    const fp32Ppl = await lmPerplexity(nodeRuntime, new Uint8Array(readFileSync(join(MODELS, 'lm.onnx'))), windows);
    expect(pagePpl.perplexity).toBe(cliPpl.perplexity);
    expect(pagePpl.perplexity).toBeLessThan(fp32Ppl.perplexity * 1.1);

    await page.screenshot({ path: join(OUT, 'web-desktop.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    // Phone width: nothing wider than the screen but the tables, which scroll inside their boxes.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(overflow).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(OUT, 'web-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    expect(errors).toEqual([]);
    expect(outside).toEqual([]);
  });

  it('window.quantkit on the CNN: int8, nf4, int8-dynamic byte-identical to the CLI path, int8-static to 2^-20 (its calibration runs in ORT Web); compare runs', async () => {
    const cnn = readFileSync(join(MODELS, 'cnn.onnx'));
    const calibPath = join(MODELS, 'cnn-calib-x.npy');
    for (const scheme of ['int8', 'nf4', 'int8-dynamic', 'int8-static'] as const) {
      const cliOut = join(tmp, `cnn-${scheme}.onnx`);
      if (scheme === 'int8-dynamic' || scheme === 'int8-static')
        await quantizeActivationFile(join(MODELS, 'cnn.onnx'), cliOut, {
          scheme,
          calib: scheme === 'int8-static' ? [calibPath] : undefined,
          verify: false,
        });
      else await quantizeFile(join(MODELS, 'cnn.onnx'), cliOut, { scheme, verify: false });
      const b64 = await page.evaluate(
        async ({ model, scheme, calib }) => {
          const qk = (window as unknown as { quantkit: PageApi }).quantkit;
          const bin = Uint8Array.from(atob(model), (c) => c.charCodeAt(0));
          const calibBlob = calib ? new Blob([Uint8Array.from(atob(calib), (c) => c.charCodeAt(0))]) : undefined;
          const r = await qk.quantizeModelBytes(bin, { scheme, calib: calibBlob });
          let s = '';
          for (let i = 0; i < r.bytes.length; i += 0x8000) s += String.fromCharCode(...r.bytes.subarray(i, i + 0x8000));
          return btoa(s);
        },
        {
          model: cnn.toString('base64'),
          scheme,
          calib: scheme === 'int8-static' ? readFileSync(calibPath).toString('base64') : undefined,
        },
      );
      const fromPage = Buffer.from(b64, 'base64');
      if (scheme === 'int8-static') expectSameUpToUlps(fromPage, readFileSync(cliOut));
      else expect(fromPage.equals(readFileSync(cliOut)), scheme).toBe(true);
    }
    const c = await page.evaluate(async (model) => {
      const qk = (window as unknown as { quantkit: PageApi }).quantkit;
      const bin = Uint8Array.from(atob(model), (ch) => ch.charCodeAt(0));
      const q = await qk.quantizeModelBytes(bin, { scheme: 'int8' });
      return qk.compare(bin, q.bytes);
    }, cnn.toString('base64'));
    expect(c.outputs[0]?.sqnrDb).toBeGreaterThan(20);
    expect(c.outputs[0]?.top1Agreement).toBeGreaterThan(0.8);
    expect(errors).toEqual([]);
    expect(outside).toEqual([]);
  });

  it('a model with external data (the .onnx and its data file picked together): .onnx + .onnx_data as the CLI writes them', async () => {
    const ext = join(tmp, 'ext');
    mkdirSync(ext);
    await convertFile(join(MODELS, 'lm.onnx'), join(ext, 'lm.onnx'), { externalData: true, verify: false });
    const cliDir = join(tmp, 'ext-cli');
    mkdirSync(cliDir);
    await quantizeFile(join(ext, 'lm.onnx'), join(cliDir, 'lm-q4.onnx'), { scheme: 'q4', verify: false });

    await page.setInputFiles('#model-files', [join(ext, 'lm.onnx'), join(ext, 'lm.onnx.data')]);
    await page.waitForFunction(() => document.querySelector('#model-status')?.textContent?.includes('external data'));
    expect(await page.textContent('#model-status')).not.toContain('Missing');
    await page.selectOption('#scheme', 'q4');
    await page.click('#quantize');
    await page.waitForFunction(() => document.querySelector('#run-status')?.textContent?.startsWith('Done'));
    const downloads: Download[] = [];
    page.on('download', (d) => downloads.push(d));
    await page.click('#download');
    await page.waitForFunction(() => document.querySelector('#download-status')?.textContent?.includes('onnx_data'));
    for (let i = 0; i < 50 && downloads.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    expect(downloads.map((d) => d.suggestedFilename())).toEqual(['lm-q4.onnx', 'lm-q4.onnx_data']);
    const pageDir = join(tmp, 'ext-page');
    mkdirSync(pageDir);
    for (const d of downloads) await d.saveAs(join(pageDir, d.suggestedFilename()));

    // The CLI names its data file lm-q4.onnx.data, the page lm-q4.onnx_data (what transformers.js
    // looks for): the same length, so the .onnx files differ in those bytes only.
    const pageModel = readFileSync(join(pageDir, 'lm-q4.onnx'));
    const renamed = Buffer.from(
      pageModel.toString('latin1').replaceAll('lm-q4.onnx_data', 'lm-q4.onnx.data'),
      'latin1',
    );
    expect(renamed.equals(readFileSync(join(cliDir, 'lm-q4.onnx')))).toBe(true);
    expect(readFileSync(join(pageDir, 'lm-q4.onnx_data')).equals(readFileSync(join(cliDir, 'lm-q4.onnx.data')))).toBe(
      true,
    );
    const windows = readNpy(readFileSync(join(MODELS, 'lm-eval.npy')));
    const ppl = async (path: string) =>
      (await lmPerplexity(nodeRuntime, readOnnxFileInlined(path), windows)).perplexity;
    expect(await ppl(join(pageDir, 'lm-q4.onnx'))).toBe(await ppl(join(cliDir, 'lm-q4.onnx')));
    expect(errors).toEqual([]);
    expect(outside).toEqual([]);
  });

  it('cancel ends the running job (QK_CANCELLED); the next job runs in a fresh worker', async () => {
    const r = await page.evaluate(
      async (model) => {
        const qk = (window as unknown as { quantkit: PageApi }).quantkit;
        const bin = Uint8Array.from(atob(model), (c) => c.charCodeAt(0));
        const job = qk.quantize(bin, { scheme: 'q4' }).then(
          () => 'finished',
          (e: { code?: string }) => e.code ?? 'no code',
        );
        qk.cancel();
        const outcome = await job;
        const again = await qk.quantize(bin, { scheme: 'q4' });
        return { outcome, size: again.model.size };
      },
      readFileSync(join(MODELS, 'lm.onnx')).toString('base64'),
    );
    expect(r.outcome).toBe('QK_CANCELLED');
    expect(r.size).toBe(readFileSync(join(tmp, 'lm-q4-cli.onnx')).length);
  });

  it('a user error shows in the page with its code and way out, not on the console', async () => {
    await page.setInputFiles('#model-files', join(MODELS, 'cnn.onnx'));
    await page.waitForFunction(() => document.querySelector('#model-status')?.textContent?.startsWith('cnn.onnx'));
    await page.selectOption('#scheme', 'int8-static');
    await page.setInputFiles('#calib', []);
    await page.click('#quantize');
    await page.waitForFunction(() => document.querySelector('#run-status')?.textContent?.startsWith('Error'));
    const shown = await page.textContent('#run-status');
    expect(shown).toContain('QK_CALIB_MISSING');
    expect(shown).toContain('calib');
    expect(await page.isEnabled('#quantize')).toBe(true);
    expect(errors).toEqual([]);
  });

  it('`quantkit web` prints the URL it serves the page at, on 127.0.0.1', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'src/cli/bin.ts'), 'web', '--port', '0', '--dir', join(tmp, 'site')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const line = await new Promise<string>((ok, fail) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) ok(out);
        });
        child.once('exit', (code) => fail(new Error(`quantkit web exited (${code})`)));
      });
      const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(line)?.[0];
      expect(url, line).toBeDefined();
      const res = await fetch(url as string);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<title>quantkit');
      expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('every control has a label and is reachable with the keyboard', async () => {
    const unlabelled = await page.evaluate(() =>
      Array.from(document.querySelectorAll('input, select, button'))
        .filter((el) => !(el as HTMLElement).closest('[hidden]'))
        .filter((el) => {
          const labels = (el as HTMLInputElement).labels;
          return !(labels && labels.length > 0) && !el.getAttribute('aria-label') && !el.textContent?.trim();
        })
        .map((el) => el.id || el.outerHTML.slice(0, 60)),
    );
    expect(unlabelled).toEqual([]);
    // Tab from the top reaches the Quantize button.
    await page.focus('body');
    const reached: string[] = [];
    for (let i = 0; i < 40 && !reached.includes('quantize'); i++) {
      await page.keyboard.press('Tab');
      reached.push(await page.evaluate(() => document.activeElement?.id ?? ''));
    }
    expect(reached).toContain('scheme');
    expect(reached).toContain('quantize');
  });
});

// The web page measured in headless Chromium, beside the CLI on the same machine:
//   1. wall time to quantize the shipped LM to q4: the page (button to report, and the worker's
//      own time) vs `quantkit quantize` as a process and quantizeFile in this process;
//   2. peak memory while a large model made by the bench's generator (default 512 MiB of fp32
//      weights, external data) is quantized to q4 in the page: the JS heap (V8 used size plus
//      ArrayBuffer backing stores, from the DevTools protocol's Runtime.getHeapUsage) of the page
//      and of its worker, and the RSS of all Chromium processes, against the model's size.
// Usage: npx tsx scripts/measure/web-page.ts [weight MiB (512)] [scheme (q4)]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type CDPSession, type Page } from 'playwright-core';
import { generateLargeModel } from '../../bench/large-model.bench.js';
import { quantizeFile } from '../../src/flows/quantize-file.js';
import { serveWeb } from '../../src/node/web-server.js';
import { quantizeModelBytes } from '../../src/web/api.js';

const REPO = new URL('../../', import.meta.url).pathname;
const MiB = 2 ** 20;
const weightMiB = Number(process.argv[2] ?? 512);
const scheme = process.argv[3] ?? 'q4';
const MARK = `--qk-measure=${process.pid}`;

interface HeapUsage {
  usedSize: number;
  /** ArrayBuffer backing stores (outside V8's heap proper). */
  backingStorageSize?: number;
}

/** Heap usage of every page and worker target, by the DevTools protocol (non-flat sessions). */
class HeapProbe {
  private next = 1;
  private readonly waiting = new Map<number, (r: HeapUsage | undefined) => void>();
  private readonly sessions = new Map<string, string>();
  constructor(private readonly cdp: CDPSession) {
    cdp.on('Target.receivedMessageFromTarget', (e: { message: string }) => {
      const m = JSON.parse(e.message) as { id?: number; result?: HeapUsage };
      if (m.id !== undefined && m.result) this.waiting.get(m.id)?.(m.result);
    });
  }
  async sample(): Promise<Record<string, number>> {
    const { targetInfos } = await this.cdp.send('Target.getTargets');
    const out: Record<string, number> = {};
    for (const t of targetInfos.filter((x) => x.type === 'page' || x.type === 'worker')) {
      if (!t.url.startsWith('http')) continue;
      let sessionId = this.sessions.get(t.targetId);
      if (!sessionId) {
        sessionId = (await this.cdp.send('Target.attachToTarget', { targetId: t.targetId, flatten: false })).sessionId;
        this.sessions.set(t.targetId, sessionId);
      }
      const id = this.next++;
      const reply = new Promise<HeapUsage | undefined>((ok) => {
        this.waiting.set(id, ok);
        setTimeout(() => ok(undefined), 5000);
      });
      await this.cdp.send('Target.sendMessageToTarget', {
        sessionId,
        message: JSON.stringify({ id, method: 'Runtime.getHeapUsage' }),
      });
      const got = await reply;
      this.waiting.delete(id);
      if (got) out[t.type] = got.usedSize + (got.backingStorageSize ?? 0);
    }
    return out;
  }
}

/** RSS of the Chromium processes started with MARK, and their descendants (/proc). */
function chromiumRss(): number {
  const procs = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  const parent = new Map<number, number>();
  const rss = new Map<number, number>();
  const roots: number[] = [];
  for (const p of procs) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(p), Number(fields[1]));
      rss.set(Number(p), Number(fields[21]) * 4096);
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(MARK)) roots.push(Number(p));
    } catch {
      /* gone */
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, i = 0; p > 1 && i < 64; p = parent.get(p) ?? 0, i++) if (roots.includes(p)) return true;
    return false;
  };
  let sum = 0;
  for (const [pid, r] of rss) if (inTree(pid)) sum += r;
  return sum;
}

async function quantizeInPage(page: Page, files: string[], options: { scheme: string }) {
  await page.setInputFiles('#model-files', files);
  await page.waitForSelector('#inspect:not([hidden])');
  await page.selectOption('#scheme', options.scheme);
  await page.click('#quantize');
  await page.waitForFunction(() => document.querySelector('#run-status')?.textContent?.match(/^(Done|Error)/), null, {
    timeout: 0,
    polling: 100,
  });
  const status = (await page.textContent('#run-status')) ?? '';
  if (!status.startsWith('Done')) throw new Error(status);
  return page.evaluate(() => {
    const out = document.querySelector('#report')?.textContent ?? '';
    return {
      pageMs: (window as unknown as { quantkit: { lastQuantizeMs: number } }).quantkit.lastQuantizeMs,
      workerS: Number(/quantized in ([0-9.]+) s/.exec(out)?.[1]),
    };
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'qk-web-measure-'));
let browser: Browser | undefined;
try {
  const site = join(tmp, 'site');
  const built = spawnSync(process.execPath, [join(REPO, 'scripts/build-web.mjs'), site], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(built.stderr);
  const web = await serveWeb({ root: site });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', MARK],
  });
  const page = await browser.newPage();
  await page.goto(web.url);
  await page.waitForSelector('body[data-ready]');

  // 1. The shipped LM to q4: page vs CLI (three runs each, median).
  const lm = join(REPO, 'models/lm.onnx');
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const pageRuns: { pageMs: number; workerS: number }[] = [];
  for (let i = 0; i < 3; i++) pageRuns.push(await quantizeInPage(page, [lm], { scheme: 'q4' }));
  const cliRuns: number[] = [];
  const inProcess: number[] = [];
  const inMemory: number[] = [];
  const lmBytes = readFileSync(lm);
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO, 'src/cli/bin.ts'),
        'quantize',
        lm,
        '-s',
        'q4',
        '-o',
        join(tmp, 'lm-q4.onnx'),
        '-f',
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(r.stderr);
    cliRuns.push(performance.now() - t0);
    const t1 = performance.now();
    await quantizeFile(lm, join(tmp, 'lm-q4-lib.onnx'), { scheme: 'q4', force: true, verify: false });
    inProcess.push(performance.now() - t1);
    const t2 = performance.now();
    await quantizeModelBytes(lmBytes, { scheme: 'q4' });
    inMemory.push(performance.now() - t2);
  }
  console.log(
    `LM q4: page ${med(pageRuns.map((r) => r.pageMs)).toFixed(0)} ms (button to report; worker ${(med(pageRuns.map((r) => r.workerS)) * 1000).toFixed(0)} ms)` +
      ` vs CLI process ${med(cliRuns).toFixed(0)} ms (in this process: quantizeFile without the ORT check ${med(inProcess).toFixed(0)} ms, the page's quantizeModelBytes ${med(inMemory).toFixed(0)} ms)`,
  );

  // 2. A large model, peak memory while the page quantizes it.
  const dir = join(tmp, 'large');
  mkdirSync(dir);
  const { path, weightBytes } = await generateLargeModel(dir, weightMiB * MiB);
  const files = [path, join(dir, 'model.onnx.data')];
  const size = files.reduce((s, f) => s + statSync(f).size, 0);
  const probe = new HeapProbe(await browser.newBrowserCDPSession());
  const baseline = { heap: await probe.sample(), rss: chromiumRss() };
  const peak = { page: 0, worker: 0, sum: 0, rss: 0 };
  let sampling = true;
  const steps = new Set<string>();
  const sampler = (async () => {
    while (sampling) {
      steps.add(((await page.textContent('#progress-label')) ?? '').replace(/ \d+\/\d+$/, ''));
      const h = await probe.sample();
      peak.page = Math.max(peak.page, h.page ?? 0);
      peak.worker = Math.max(peak.worker, h.worker ?? 0);
      peak.sum = Math.max(peak.sum, (h.page ?? 0) + (h.worker ?? 0));
      peak.rss = Math.max(peak.rss, chromiumRss());
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t0 = performance.now();
  const r = await quantizeInPage(page, files, { scheme });
  const wall = performance.now() - t0;
  sampling = false;
  await sampler;
  const mb = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
  console.log(
    `${mb(weightBytes)} weights (${mb(size)} in files), ${scheme} in the page: ${(wall / 1000).toFixed(1)} s (worker ${r.workerS.toFixed(1)} s)`,
  );
  console.log(
    `peak JS heap (V8 used + ArrayBuffers): page ${mb(peak.page)}, worker ${mb(peak.worker)}, together ${mb(peak.sum)} = ${(peak.sum / size).toFixed(3)}× the model` +
      ` (before: page ${mb(baseline.heap.page ?? 0)}, worker ${mb(baseline.heap.worker ?? 0)})`,
  );
  console.log(`progress stages seen on the page: ${[...steps].join(' | ')}`);
  console.log(
    `peak RSS of all Chromium processes: ${mb(peak.rss)} = ${(peak.rss / size).toFixed(3)}× the model (before: ${mb(baseline.rss)})`,
  );
  const t2 = performance.now();
  await quantizeFile(path, join(tmp, 'large-q4.onnx'), { scheme: scheme as 'q4', verify: false });
  console.log(`same model with quantizeFile (Node, worker threads): ${((performance.now() - t2) / 1000).toFixed(1)} s`);
  await web.close();
} finally {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
}

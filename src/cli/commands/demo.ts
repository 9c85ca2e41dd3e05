import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { demoReportData, runDemo, type DemoProgress, type DemoResult } from '../../flows/demo.js';
import { DEMO_MODEL_NAMES, type DemoModelName } from '../../flows/demo-models.js';
import { loadReportAssets } from '../../flows/report-assets.js';
import { writeFileAtomic } from '../../node/files.js';
import { renderReport, schemeTable } from '../../web/report/index.js';
import { formatTable } from '../table.js';

interface DemoCliOptions {
  model: string;
  schemes?: string;
  out?: string;
  report?: string;
  json?: boolean;
  force?: boolean;
  progress?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('quantize the shipped models with every scheme, measure each in ONNX Runtime, print the table')
    .option('--model <name>', `which shipped model: ${DEMO_MODEL_NAMES.join(', ')} or all`, 'all')
    .option(
      '--schemes <list>',
      "comma-separated scheme names or row labels (e.g. 'int8,q4,nf4 b64,int8-static entropy'); default: every scheme",
    )
    .option('--out <dir>', 'keep the quantized models in this folder (default: a temp folder, removed after)')
    .option('--report <file.html>', 'also write a self-contained HTML report with plots')
    .option('--json', 'print the results as JSON instead of tables')
    .option('-f, --force', 'replace an existing report file')
    .option('--progress', 'show progress bars even when stderr is not a terminal')
    .action(async (opts: DemoCliOptions) => {
      await demoCommand(opts);
    });
}

function parseModels(s: string): DemoModelName[] {
  if (s === 'all') return [...DEMO_MODEL_NAMES];
  const names = s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(DEMO_MODEL_NAMES as readonly string[]).includes(n)) {
      throw new QuantkitError(
        'QK_UNKNOWN_MODEL',
        `--model '${n}' is not a shipped model`,
        `use ${DEMO_MODEL_NAMES.join(', ')} or all`,
      );
    }
  }
  return names as DemoModelName[];
}

/** One cli-progress bar per model on stderr; silent when stderr is not a terminal (unless forced). */
function progressBars(force: boolean): DemoProgress | undefined {
  if (!force && !process.stderr.isTTY) return undefined;
  const bars = new MultiBar(
    {
      format: '{model} [{bar}] {value}/{total} {row}',
      stream: process.stderr,
      noTTYOutput: force,
      notTTYSchedule: 1000,
      hideCursor: true,
      clearOnComplete: false,
    },
    Presets.shades_classic,
  );
  let bar: SingleBar | undefined;
  let model = '';
  return {
    start(name, steps) {
      model = name.padEnd(3);
      bar = bars.create(steps, 0, { model, row: 'fp32' });
    },
    step(label) {
      bar?.increment(1, { model, row: label });
    },
    stop() {
      bars.stop();
    },
  };
}

const jsonNumbers = (_key: string, v: unknown): unknown =>
  typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf') : v;

export function renderDemoTables(result: DemoResult): string {
  const parts: string[] = [];
  for (const m of result.models) {
    const t = schemeTable(m);
    parts.push(`${m.name}: ${m.description}`, formatTable(t.header, t.rows), ...t.notes, '');
  }
  parts.push(
    `measured in ${result.seconds.toFixed(1)} s with ONNX Runtime; size = .onnx file, latency = median run ÷ fp32 median run`,
  );
  if (result.outDir) parts.push(`quantized models kept in ${result.outDir}`);
  return `${parts.join('\n')}\n`;
}

export async function demoCommand(opts: DemoCliOptions): Promise<DemoResult> {
  const models = parseModels(opts.model);
  const schemes = opts.schemes
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // Read Chart.js before the long run, so a broken install fails at once.
  const assets = opts.report ? loadReportAssets() : undefined;
  const progress = progressBars(opts.progress ?? false);
  const result = await runDemo({
    models,
    ...(schemes ? { schemes } : {}),
    ...(opts.out ? { outDir: opts.out } : {}),
    ...(progress ? { progress } : {}),
  });
  if (opts.report && assets) {
    const html = renderReport(demoReportData(result), assets);
    await writeFileAtomic(opts.report, [new TextEncoder().encode(html)], { force: opts.force ?? false });
  }
  if (opts.json) {
    const slim = {
      ...result,
      models: result.models.map((m) => ({ ...m, layers: m.layers.map((l) => ({ name: l.name, dims: l.dims })) })),
    };
    process.stdout.write(`${JSON.stringify(slim, jsonNumbers, 2)}\n`);
  } else {
    process.stdout.write(renderDemoTables(result));
    if (opts.report) process.stdout.write(`report written to ${opts.report}\n`);
  }
  return result;
}

import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { quantizeFile } from '../../flows/quantize.js';
import { SCHEME_NAMES, type SchemeName, type WeightOnlyReport } from '../../passes/weight-only/index.js';
// --report (demo engineer's edit): the HTML report of web/report for this run.
import { writeFileAtomic } from '../../node/files.js';
import { loadReportAssets } from '../../flows/report-assets.js';
import { quantizeReportData } from '../../flows/quantize-report.js';
// eslint-disable-next-line no-restricted-imports -- cli writes the web report (lead: allow cli → web in eslint.config.js)
import { renderReport } from '../../web/report/index.js';

interface QuantizeCliOptions {
  output: string;
  scheme: string;
  blockSize?: string;
  exclude: string[];
  keepFirstLast?: boolean;
  doubleQuant?: boolean;
  format?: string;
  rtn?: boolean;
  json?: boolean;
  force?: boolean;
  report?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

export function registerQuantize(program: Command): void {
  program
    .command('quantize')
    .description('weight-only quantization to a model ONNX Runtime runs (per-layer report)')
    .argument('<in>', 'ONNX model file')
    .requiredOption('-o, --output <file>', 'output ONNX file')
    .requiredOption('-s, --scheme <scheme>', `one of ${SCHEME_NAMES.join(', ')}`)
    .option('--block-size <n>', 'block size for q4/q4-asym/q8-block (default 32) and nf4/fp4 (default 64): 16, 32, 64, 128, 256')
    .option('--exclude <op|name...>', 'keep these op types, node names or weight names in fp32 (repeatable, comma-separated)', collect, [])
    .option('--keep-first-last', 'keep the first and last weight layers in fp32')
    .option('--double-quant', 'nf4/fp4: double-quantize the absmax constants')
    .option('--format <form>', "q4/q4-asym: 'native' (MatMulNBits, default) or 'qdq' (opset-21 blocked DequantizeLinear)")
    .option('--rtn', 'plain round-to-nearest scales (what ONNX Runtime\'s quantizer does), no per-block search')
    .option('--json', 'print the report as JSON')
    .option('-f, --force', 'replace an existing output file')
    .option('--report <file.html>', 'also write a self-contained HTML report (weight histograms with the grid, SQNR per layer)')
    .action(async (input: string, opts: QuantizeCliOptions) => {
      await quantizeCommand(input, opts);
    });
}

function parseBlockSize(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n)) throw new QuantkitError('QK_BAD_BLOCK_SIZE', `--block-size '${s}' is not an integer`, 'use 16, 32, 64, 128 or 256');
  return n;
}

export async function quantizeCommand(input: string, opts: QuantizeCliOptions): Promise<WeightOnlyReport> {
  if (!(SCHEME_NAMES as string[]).includes(opts.scheme)) {
    throw new QuantkitError('QK_UNKNOWN_SCHEME', `unknown scheme '${opts.scheme}'`, `use one of ${SCHEME_NAMES.join(', ')}`);
  }
  if (opts.format !== undefined && opts.format !== 'native' && opts.format !== 'qdq') {
    throw new QuantkitError('QK_BAD_OPTION', `--format '${opts.format}' is not known`, "use 'native' or 'qdq'");
  }
  const r = await quantizeFile(input, opts.output, {
    scheme: opts.scheme as SchemeName,
    blockSize: parseBlockSize(opts.blockSize),
    exclude: opts.exclude,
    keepFirstLast: opts.keepFirstLast ?? false,
    doubleQuant: opts.doubleQuant ?? false,
    format: opts.format as 'native' | 'qdq' | undefined,
    rtn: opts.rtn ?? false,
    force: opts.force ?? false,
  });
  if (opts.report) {
    const data = quantizeReportData(input, opts.output, r.report, r.inputFileBytes, r.outputFileBytes);
    await writeFileAtomic(opts.report, [new TextEncoder().encode(renderReport(data, loadReportAssets()))], { force: opts.force ?? false, inputs: [input, opts.output] });
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ input, output: opts.output, inputFileBytes: r.inputFileBytes, outputFileBytes: r.outputFileBytes, ...r.report }, jsonNumbers, 2)}\n`);
  } else {
    process.stdout.write(formatReport(r.report));
    process.stdout.write(`file: ${r.inputFileBytes} → ${r.outputFileBytes} bytes (${(r.outputFileBytes / r.inputFileBytes).toFixed(3)}×) written to ${opts.output}\n`);
  }
  return r.report;
}

/** JSON has no Infinity: an exact reconstruction's SQNR is written as the string "inf". */
function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? (value > 0 ? 'inf' : value < 0 ? '-inf' : 'nan') : value;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatReport(r: WeightOnlyReport): string {
  const rows = r.layers.map((l) => [
    l.weight, l.opTypes.join(','), l.scheme, l.form,
    l.sqnrDb === null ? '-' : Number.isFinite(l.sqnrDb) ? l.sqnrDb.toFixed(1) : 'inf',
    String(l.bytesBefore), String(l.bytesAfter), l.note,
  ]);
  const head = ['weight', 'op', 'scheme', 'form', 'SQNR dB', 'bytes before', 'bytes after', 'note'];
  const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...rows.map((row) => (row[i] as string).length))));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i] as number)).join('  ').trimEnd();
  const t = r.totals;
  return [
    line(head),
    ...rows.map(line),
    `total weights: ${t.bytesBefore} → ${t.bytesAfter} bytes (${t.ratio.toFixed(3)}×); ${t.quantizedLayers} quantized, ${t.skippedLayers} kept fp32`,
    ...r.notes.map((n) => `note: ${n}`),
    '',
  ].join('\n');
}

import type { Command } from 'commander';
import { sensitivityFile } from '../../flows/mixed-file.js';
import { loadReportAssets } from '../../flows/report-assets.js';
import { writeFileAtomic } from '../../node/files.js';
import { renderSensitivityReport, sensitivityTableCells } from '../../web/report/index.js';
import { DEFAULT_CANDIDATES, objectiveName, type SensitivityResult } from '../../flows/mixed.js';
import { inCliWords } from '../option-flags.js';
import { progressBar } from '../progress.js';
import { formatTable } from '../table.js';
import { collectList } from '../flag-values.js';

interface SensitivityCliOptions {
  calib?: string[];
  schemes?: string[];
  exclude: string[];
  json?: boolean;
  progress?: boolean;
  report?: string;
  awq?: boolean;
  loss?: string;
  labels?: string;
  force?: boolean;
}

/** log10 cost as a bar over the column's range (1 … 40 characters): the layers to keep wide stand out. */
function bar(kl: number, lo: number, hi: number): string {
  if (kl <= 0) return `(${kl.toExponential(1)}: no rise)`;
  const x = kl > 0 && hi > lo ? (Math.log10(kl) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : 0;
  return '#'.repeat(1 + Math.round(Math.min(1, Math.max(0, x)) * 39));
}

export function formatSensitivity(r: SensitivityResult, labels: readonly string[]): string {
  const { head, rows } = sensitivityTableCells(r, labels);
  // The plot: each weight's cost under the narrowest candidate, log scale.
  const name = objectiveName(r.loss);
  const narrow = labels.findIndex((l) => l !== 'fp32');
  const kls = r.weights.map((w) => w.costs[narrow]?.kl ?? 0).filter((v) => v > 0);
  const lo = Math.min(...kls);
  const hi = Math.max(...kls);
  const width = Math.max(...r.weights.map((x) => x.node.length));
  const plot = r.weights.map((w) => `${w.node.padEnd(width)} ${bar(w.costs[narrow]?.kl ?? 0, lo, hi)}`);
  return [
    formatTable(head, rows),
    '',
    `${name} under ${labels[narrow] ?? '-'} (log scale, ${lo.toExponential(1)} … ${hi.toExponential(1)}):`,
    ...plot,
    r.loss === 'task'
      ? `Δloss: mean cross-entropy over ${r.positions} labelled output positions with only this weight quantized, less fp32's, nats (negative: the loss fell)`
      : `KL: mean over ${r.positions} output positions of KL(fp32 ‖ only this weight quantized), nats`,
    '',
  ].join('\n');
}

export function registerSensitivity(program: Command): void {
  program
    .command('sensitivity')
    .description(
      'per linear weight and candidate scheme: the output KL (or task-loss rise) when only that weight is quantized, and its true bits per weight',
    )
    .argument('<model>', 'ONNX model file')
    .option('--calib <[name=]file.npy...>', 'calibration inputs, first axis = samples (repeat per model input)')
    .option(
      '--schemes <list>',
      `candidates scheme[:block][+gptq], comma-separated (default ${DEFAULT_CANDIDATES.join(',')})`,
      collectList,
    )
    .option('--exclude <op|name...>', 'leave these weights out (repeatable, comma-separated)', collectList, [])
    .option('--awq', "AWQ's activation scales folded in first (as quantize --target-bits --awq measures)")
    .option(
      '--loss <kl|task>',
      "what a choice costs: 'kl' (default) the output KL from fp32; 'task' the rise of the cross-entropy against --labels (a classifier) or the next tokens (a causal LM)",
    )
    .option('--labels <y.npy>', 'with --loss task on a classifier: one int class per calibration sample')
    .option('--report <file.html>', 'also write a self-contained HTML report: the table and a log-scale bar chart')
    .option('-f, --force', 'overwrite the report file if it exists')
    .option('--json', 'print the result as JSON')
    .option('--progress', 'show a progress bar even when stderr is not a terminal')
    .action(async (model: string, opts: SensitivityCliOptions) => {
      const bar = progressBar('sensitivity', opts.progress ?? false);
      const r = await sensitivityFile(model, {
        calib: opts.calib,
        schemes: opts.schemes,
        exclude: opts.exclude,
        awq: opts.awq ?? false,
        loss: opts.loss,
        labels: opts.labels,
        progress: bar.progress && ((done, total) => bar.progress?.(done, total, 1, 1)),
      })
        .finally(() => bar.stop())
        .then(inCliWords);
      if (opts.report)
        await writeFileAtomic(
          opts.report,
          [new TextEncoder().encode(renderSensitivityReport(model, r, loadReportAssets()))],
          { force: opts.force ?? false, inputs: [model] },
        );
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ model, ...r }, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        formatSensitivity(
          r,
          r.candidates.map((c) => c.label),
        ),
      );
      for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
    });
}

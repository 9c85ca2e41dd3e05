import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { BENCH_GROUPS, runBench, type BenchGroup, type BenchReport } from '../../flows/bench-node.js';
import { formatTable } from '../table.js';
import { parseThreadsFlag } from '../threads.js';

interface BenchFlags {
  quick?: boolean;
  only?: string;
  json?: boolean;
  threads?: string;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'time our int8/4-bit kernels and quantized models beside ONNX Runtime (node and web) in one run; ratios, higher = ours faster',
    )
    .option('--quick', 'small sizes and a subset, in seconds (a smoke test, not figures to quote)')
    .option('--only <groups>', `comma-separated subset of ${BENCH_GROUPS.join(',')}`)
    .option('--json', 'print the report as JSON (figures keyed <ours>_vs_<theirs>_ratio)')
    .option(
      '--threads <n>',
      "threads of the multi-thread rows, ours and ORT-node's alike ('all' or default: every core; 1: none)",
    )
    .action(async (flags: BenchFlags) => {
      const report = await runBench({
        quick: flags.quick ?? false,
        only: parseGroups(flags.only),
        threads: parseThreadsFlag(flags.threads),
        onStep: process.stderr.isTTY && !flags.json ? (label) => process.stderr.write(`  ${label} …\n`) : undefined,
      });
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderBench(report));
    });
}

function parseGroups(text: string | undefined): BenchGroup[] | undefined {
  if (text === undefined) return undefined;
  return text.split(',').map((g) => {
    const name = g.trim() as BenchGroup;
    if (!BENCH_GROUPS.includes(name))
      throw new QuantkitError('QK_BAD_FLAG', `--only: unknown group '${g}'`, `use some of ${BENCH_GROUPS.join(',')}`);
    return name;
  });
}

function renderBench(r: BenchReport): string {
  const rate = (v: number | undefined) => (v === undefined ? '' : v >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const lines = [
    `${r.cpu}, ${r.cores} cores, Node ${r.node}, onnxruntime ${r.ortNodeVersion}; our kernels: ${r.kernels}${r.quick ? ' (--quick: small sizes)' : ''}`,
    '',
    formatTable(
      ['measurement', 'ours ms', 'theirs ms', 'ratio', 'ours', 'theirs', 'unit'],
      r.rows.map((row) => [
        row.label,
        row.oursMs.toPrecision(3),
        row.theirsMs.toPrecision(3),
        `${row.ratio.toFixed(2)}×`,
        rate(row.rate?.ours),
        rate(row.rate?.theirs),
        row.rate?.unit ?? '',
      ]),
    ),
    '',
    ...Object.entries(r.checks).map(([k, v]) => `${k}: ${v ? 'yes' : 'NO'}`),
    ...r.notes.map((n) => `note: ${n}`),
    '',
  ];
  return lines.join('\n');
}

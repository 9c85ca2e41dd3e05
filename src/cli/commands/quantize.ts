import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { formatTable } from '../table.js';
import { quantizeFile } from '../../flows/quantize-file.js';
import { DEFAULT_CANDIDATES, objectiveName } from '../../flows/mixed.js';
import { quantizeMixedFile } from '../../flows/mixed-file.js';
import type { SchemeName, WeightOnlyReport } from '../../passes/weight-only/index.js';
// --report: the HTML report of web/report for this run.
import { writeFileAtomic } from '../../node/files.js';
import { loadReportAssets } from '../../flows/report-assets.js';
import { quantizeReportData } from '../../flows/quantize-report.js';
import { progressBar, stepProgressBar } from '../progress.js';
import { renderReport } from '../../web/report/index.js';
import { describeVerification, type Verification } from '../../node/verify-model.js';
import { quantizeActivationFile } from '../../flows/activation-file.js';
import { formatActivationReport } from '../activation-report.js';
import { inCliWords } from '../option-flags.js';
import {
  ALL_SCHEME_NAMES,
  SCHEME_TABLE,
  schemeRow,
  schemesOf,
  type ActivationScheme,
  type SchemeFamily,
  type SchemeOption,
} from '../../flows/schemes.js';
import { NON_FINITE_POLICIES, type NonFinitePolicy } from '../../passes/non-finite.js';
import { isTarget, type Target, TARGETS } from '../../passes/activation/weight-form.js';
import { collectList } from '../flag-values.js';

interface QuantizeCliOptions {
  output: string;
  scheme?: string;
  blockSize?: string;
  exclude: string[];
  keepFirstLast?: boolean;
  doubleQuant?: boolean;
  format?: string;
  rtn?: boolean;
  accuracyLevel?: string;
  minConvReduction?: string;
  quantizeEmbeddings?: boolean;
  json?: boolean;
  force?: boolean;
  report?: string;
  // int8-static / int8-dynamic options
  calib?: string[];
  method?: string;
  calibBatch?: string;
  smoothquant?: boolean | string;
  activations?: string;
  dynamicForm?: string;
  perToken?: boolean;
  target?: string;
  progress?: boolean;
  actOrder?: boolean; // GPTQ (--calib with q4/q4-asym/q8-block/nf4/fp4)
  hqq?: boolean;
  floatZeroPoints?: string;
  awq?: boolean;
  awqGptq?: boolean;
  awqObjective?: string;
  targetBits?: string;
  outliers?: string;
  targetSize?: string;
  maxLossIncrease?: string;
  crossFit?: boolean;
  loss?: string;
  labels?: string;
  guard: boolean; // --no-guard turns it off
  refit: boolean; // --no-refit turns it off
  schemes?: string[];
  nonFinite?: string;
  verify: boolean; // --no-verify turns it off
  // kmeans
  bits?: string;
  perChannel?: boolean;
  seed?: string;
}

export function registerQuantize(program: Command): void {
  program
    .command('quantize')
    .description(
      'quantize a model into one ONNX Runtime runs: weight-only, or int8 with dynamic or calibrated activations (per-layer report)',
    )
    .argument('<in>', 'ONNX model file')
    .requiredOption('-o, --output <file>', 'output ONNX file')
    .option('-s, --scheme <scheme>', `one of ${ALL_SCHEME_NAMES.join(', ')}`)
    .option(
      '--target-bits <b>',
      'mixed precision instead of --scheme: the scheme per linear weight of least measured loss (needs --calib) within b bits per weight',
    )
    .option(
      '--max-loss-increase <p>',
      'mixed precision: the smallest model whose predicted loss (perplexity) rises by at most p (e.g. 1%)',
    )
    .option('--target-size <bytes>', 'mixed precision within this many bytes of linear weights (e.g. 300MB, 2.5e6)')
    .option(
      '--cross-fit',
      'with --target-bits/--target-size: score the candidates on calibration samples their GPTQ/AWQ did not see (two halves, each fitted on one and scored on the other)',
    )
    .option(
      '--loss <kl|task>',
      "mixed precision: what a choice costs, 'kl' (default, output KL from fp32) or 'task' (cross-entropy rise against --labels, or a causal LM's next tokens)",
    )
    .option(
      '--labels <y.npy>',
      'mixed precision with --loss task on a classifier: one int class per calibration sample',
    )
    .option(
      '--no-guard',
      'with --target-bits/--target-size: skip weighing the mixed plan against each single scheme that fits (fitted on one half of the calibration samples, scored on the other; the better one is written)',
    )
    .option(
      '--no-refit',
      "with --target-bits/--target-size/--max-loss-increase: write the plan assembled from each candidate's whole-model GPTQ run instead of refitting it (one sequential GPTQ pass, each weight in its planned form on top of the layers before it in theirs)",
    )
    .option(
      '--schemes <list>',
      `with --target-bits/--target-size: candidates scheme[:block][+gptq] (default ${DEFAULT_CANDIDATES.join(',')})`,
      collectList,
      [],
    )
    .option(
      '--block-size <n>',
      'block size for q4/q4-asym/q8-block (default 32) and nf4/fp4 (default 64): 16, 32, 64, 128, 256',
    )
    .option(
      '--exclude <op|name...>',
      'keep these op types, node names or weight names in fp32 (repeatable, comma-separated)',
      collectList,
      [],
    )
    .option('--keep-first-last', 'keep the first and last weight layers in fp32')
    .option('--double-quant', 'nf4/fp4: double-quantize the absmax constants')
    .option(
      '--format <form>',
      "q4/q4-asym: 'native' (MatMulNBits, default) or 'qdq' (opset-21 blocked DequantizeLinear)",
    )
    .option(
      '--quantize-embeddings',
      'q4/q4-asym/q8-block/nf4/fp4: quantize Gather embedding tables too (GatherBlockQuantized; int8 rows for nf4/fp4 and tied tables)',
    )
    .option('--rtn', "plain round-to-nearest scales (what ONNX Runtime's quantizer does), no per-block search")
    .option(
      '--accuracy-level <n>',
      'MatMulNBits schemes (q2…q8-block): accuracy_level 0-4 (default 0: fp32; 4: ONNX Runtime may quantize activations to int8, approximate)',
    )
    .option('--json', 'print the report as JSON')
    .option('-f, --force', 'replace an existing output file')
    .option(
      '--report <file.html>',
      'also write a self-contained HTML report (weight histograms with the grid, SQNR per layer)',
    )
    // int8-static / int8-dynamic options
    .option(
      '--calib <[name=]file.npy...>',
      'int8-static: calibration inputs, first axis = samples (repeat per model input); q4/q4-asym/q8-block/nf4/fp4: GPTQ rounding from these inputs',
    )
    .option(
      '--method <m>',
      'int8-static range method: minmax (default), moving-average[:c], percentile[:p] (99.99), entropy, mse',
    )
    .option('--calib-batch <n>', 'int8-static: samples per calibration run (default 16)')
    .option('--smoothquant [alpha]', 'int8-static: SmoothQuant for MatMul activations (alpha default 0.5)')
    .option('--activations <type>', "int8-static: 'u8' asymmetric (default) or 's8' symmetric activations")
    .option(
      '--dynamic-form <form>',
      "int8-dynamic: 'integer' (MatMulInteger/ConvInteger, default) or 'contrib' (DynamicQuantizeMatMul)",
    )
    .option('--per-token', 'int8-dynamic: one s8 scale per token (row) of each MatMul activation')
    .option(
      '--target <cpu>',
      `int8-static/int8-dynamic: the CPU the model runs on: ${TARGETS.join(', ')} (default any: pair-safe weights exact on every CPU; vnni/arm/wasm: full-range weights, exact only there)`,
    )
    .option(
      '--min-conv-reduction <n>',
      "int8-static: keep convs whose reduction C/group·kernel is below n in fp32 (ONNX Runtime's integer conv is slower there; 16 keeps the digits CNN's first conv: 0.94× → 0.71× of fp32's latency at batch 32)",
    )
    .option(
      '--progress',
      'show progress bars (calibration, GPTQ, weight quantization) even when stderr is not a terminal',
    )
    .option(
      '--act-order',
      'GPTQ (--calib with a 4-bit scheme): quantize inputs in order of decreasing activation energy',
    )
    .option(
      '--awq',
      'block-quantized schemes with --calib: AWQ (activation-aware per-channel scales folded into the producer, then clipping) before quantizing',
    )
    .option(
      '--outliers <fraction>',
      'MatMulNBits schemes: keep this share of the weights (whole input rows of largest error, e.g. 0.5%) in fp16 beside the low-bit weight',
    )
    .option('--awq-gptq', 'with --awq: GPTQ on the AWQ-scaled weights instead of the data-free quantizer')
    .option(
      '--awq-objective <objective>',
      "with --awq: what scores each group's scales: linear (the group's own outputs, default) or block (the attention or MLP output the group feeds)",
    )
    .option('--hqq', 'q4/q4-asym/q3/q3-asym/q2/q2-asym: HQQ zero points (data-free), stored as float zero points')
    .option(
      '--float-zero-points <form>',
      "--hqq at 4 bits and q4-k: 'split' (default: MatMulNBits at zero point 8 plus a per-block correction, fast at one token in ONNX Runtime) or 'inline' (float zero points in MatMulNBits, slow at one token)",
    )
    .option(
      '--non-finite <policy>',
      "NaN/±Inf in the weights: 'error' (default), 'clamp' (NaN → 0, ±Inf → the tensor's finite extremes) or 'keep' (leave those tensors unquantized)",
    )
    .option('--bits <n>', 'kmeans: index width 1…8 (2^bits shared weights per codebook, default 4)')
    .option('--per-channel', 'kmeans: one codebook per output channel (default one per tensor)')
    .option('--seed <n>', 'kmeans: seed of the k-means++ seeding (default 1)')
    .option('--no-verify', 'do not load and run the written model in ONNX Runtime before reporting success')
    .action(async (input: string, opts: QuantizeCliOptions) => {
      if (opts.targetBits !== undefined || opts.targetSize !== undefined || opts.maxLossIncrease !== undefined) {
        await mixedCommand(input, opts);
        return;
      }
      if (opts.loss !== undefined || opts.labels !== undefined)
        throw new QuantkitError(
          'QK_BAD_OPTION',
          `--${opts.loss !== undefined ? 'loss' : 'labels'} scores the candidates of mixed precision`,
          'add --target-bits, --target-size or --max-loss-increase, or drop it',
        );
      if (opts.scheme === undefined)
        throw new QuantkitError(
          'QK_BAD_OPTION',
          'quantize needs --scheme, or --target-bits / --target-size for mixed precision',
          `e.g. --scheme q4; schemes: ${ALL_SCHEME_NAMES.join(', ')}`,
        );
      const row = schemeRow(opts.scheme);
      refuseOptions(opts, row.options);
      await FAMILY_COMMANDS[row.family](input, opts);
    });
}

/** One command per scheme family (flows/schemes.ts): each reads its family's flags. */
const FAMILY_COMMANDS: Record<SchemeFamily, (input: string, opts: QuantizeCliOptions) => Promise<unknown>> = {
  'weight-only': (input, opts) => quantizeCommand(input, opts),
  activation: (input, opts) => activationQuantizeCommand(input, opts),
};

/** The flag (and the property commander stores it under) of each option some schemes do not read. */
const SCHEME_OPTION_FLAGS: Record<SchemeOption, { key: keyof QuantizeCliOptions; flag: string }> = {
  blockSize: { key: 'blockSize', flag: '--block-size' },
  quantizeEmbeddings: { key: 'quantizeEmbeddings', flag: '--quantize-embeddings' },
  doubleQuant: { key: 'doubleQuant', flag: '--double-quant' },
  format: { key: 'format', flag: '--format' },
  rtn: { key: 'rtn', flag: '--rtn' },
  actOrder: { key: 'actOrder', flag: '--act-order' },
  hqq: { key: 'hqq', flag: '--hqq' },
  awq: { key: 'awq', flag: '--awq' },
  accuracyLevel: { key: 'accuracyLevel', flag: '--accuracy-level' },
  outliers: { key: 'outliers', flag: '--outliers' },
  report: { key: 'report', flag: '--report' },
  method: { key: 'method', flag: '--method' },
  smoothQuant: { key: 'smoothquant', flag: '--smoothquant' },
  activationType: { key: 'activations', flag: '--activations' },
  dynamicForm: { key: 'dynamicForm', flag: '--dynamic-form' },
  perToken: { key: 'perToken', flag: '--per-token' },
  target: { key: 'target', flag: '--target' },
  minConvReduction: { key: 'minConvReduction', flag: '--min-conv-reduction' },
  bits: { key: 'bits', flag: '--bits' },
  perChannel: { key: 'perChannel', flag: '--per-channel' },
  seed: { key: 'seed', flag: '--seed' },
};

/** Who reads a flag, for the message: "weight-only schemes", "int8-dynamic and int8-static". */
const FAMILY_WORDS: Record<SchemeFamily, () => string> = {
  'weight-only': () => 'weight-only schemes',
  activation: () => schemesOf('activation').join(' and '),
};

/** A flag the scheme does not read would be silently ignored: refused, naming who reads it. */
function refuseOptions(opts: QuantizeCliOptions, accepted: readonly SchemeOption[]): void {
  for (const [option, { key, flag }] of Object.entries(SCHEME_OPTION_FLAGS) as [
    SchemeOption,
    { key: keyof QuantizeCliOptions; flag: string },
  ][]) {
    if (accepted.includes(option) || opts[key] === undefined) continue;
    const readers = [
      ...new Set(
        ALL_SCHEME_NAMES.filter((n) => (SCHEME_TABLE[n].options as readonly SchemeOption[]).includes(option)).map(
          (n) => SCHEME_TABLE[n].family,
        ),
      ),
    ];
    // An option only some schemes of a family read (kmeans' --bits) names those schemes.
    const schemes = ALL_SCHEME_NAMES.filter((n) =>
      (SCHEME_TABLE[n].options as readonly SchemeOption[]).includes(option),
    );
    const some = readers.length === 1 && schemes.length < schemesOf(readers[0] as SchemeFamily).length;
    throw new QuantkitError(
      'QK_OPTION_NOT_FOR_SCHEME',
      `${flag} does not apply to --scheme ${opts.scheme}`,
      `it is for ${some ? schemes.join(', ') : readers.map((f) => FAMILY_WORDS[f]()).join(' and ')}; drop it`,
    );
  }
}

function parseCalibBatch(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!(Number.isInteger(n) && n > 0))
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--calib-batch '${text}' is not a positive integer`,
      'e.g. --calib-batch 32',
    );
  return n;
}

/** The JSON form of a report, or its table and the file sizes. */
function printResult(
  opts: QuantizeCliOptions,
  input: string,
  r: { inputFileBytes: number; outputFileBytes: number; report: object; verification: Verification },
  table: string,
): void {
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ input, output: opts.output, inputFileBytes: r.inputFileBytes, outputFileBytes: r.outputFileBytes, verification: r.verification, ...r.report }, jsonNumbers, 2)}\n`,
    );
    return;
  }
  process.stdout.write(table);
  process.stdout.write(
    `file: ${r.inputFileBytes} → ${r.outputFileBytes} bytes (${(r.outputFileBytes / r.inputFileBytes).toFixed(3)}×) written to ${opts.output}\n`,
  );
  process.stdout.write(`${describeVerification(r.verification)}\n`);
}

function parseNonFinite(s: string | undefined): NonFinitePolicy | undefined {
  if (s === undefined || (NON_FINITE_POLICIES as readonly string[]).includes(s))
    return s as NonFinitePolicy | undefined;
  throw new QuantkitError('QK_BAD_OPTION', `--non-finite '${s}' is not known`, `use ${NON_FINITE_POLICIES.join(', ')}`);
}

function awqOption(awq: boolean, objective: string | undefined): boolean | { objective: 'linear' | 'block' } {
  if (objective === undefined) return awq;
  if (objective !== 'linear' && objective !== 'block')
    throw new QuantkitError('QK_BAD_OPTION', `--awq-objective '${objective}' is not known`, 'use linear or block');
  if (!awq)
    throw new QuantkitError('QK_BAD_OPTION', '--awq-objective without --awq', 'add --awq, or drop --awq-objective');
  return { objective };
}

/** '0.5%' → 0.005; '0.005' → 0.005. */
function parseFraction(s: string | undefined, flag = '--outliers'): number | undefined {
  if (s === undefined) return undefined;
  const pct = s.trim().endsWith('%');
  const n = Number(pct ? s.trim().slice(0, -1) : s);
  if (!(n > 0)) throw new QuantkitError('QK_BAD_OPTION', `${flag} '${s}' is not a positive share`, 'e.g. 0.5%');
  return pct ? n / 100 : n;
}

function parseBlockSize(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n))
    throw new QuantkitError('QK_BAD_BLOCK_SIZE', `--block-size '${s}' is not an integer`, 'use 16, 32, 64, 128 or 256');
  return n;
}

function parseInteger(flag: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n))
    throw new QuantkitError('QK_BAD_OPTION', `${flag} '${s}' is not an integer`, `e.g. ${flag} 4`);
  return n;
}

export async function quantizeCommand(input: string, opts: QuantizeCliOptions): Promise<WeightOnlyReport> {
  if (opts.format !== undefined && opts.format !== 'native' && opts.format !== 'qdq') {
    throw new QuantkitError('QK_BAD_OPTION', `--format '${opts.format}' is not known`, "use 'native' or 'qdq'");
  }
  // --calib with a block-quantized scheme: GPTQ (flows/gptq.ts).
  const calibBatch = parseCalibBatch(opts.calibBatch);
  const bar = progressBar('GPTQ', opts.progress ?? false);
  const steps = stepProgressBar(opts.progress ?? false);
  const r = await quantizeFile(input, opts.output, {
    calib: opts.calib,
    gptq: { calibBatch, progress: bar.progress, actOrder: opts.actOrder ?? false },
    scheme: opts.scheme as SchemeName,
    blockSize: parseBlockSize(opts.blockSize),
    exclude: opts.exclude,
    keepFirstLast: opts.keepFirstLast ?? false,
    doubleQuant: opts.doubleQuant ?? false,
    format: opts.format as 'native' | 'qdq' | undefined,
    rtn: opts.rtn ?? false,
    hqq: opts.hqq ?? false,
    floatZeroPoints: opts.floatZeroPoints as 'split' | 'inline' | undefined,
    awq: awqOption(opts.awq ?? false, opts.awqObjective),
    awqGptq: opts.awqGptq ?? false,
    accuracyLevel: parseAccuracyLevel(opts.accuracyLevel),
    outliers: parseFraction(opts.outliers),
    quantizeEmbeddings: opts.quantizeEmbeddings ?? false,
    force: opts.force ?? false,
    nonFinite: parseNonFinite(opts.nonFinite),
    progress: steps.progress,
    verify: opts.verify,
    bits: parseInteger('--bits', opts.bits),
    perChannel: opts.perChannel,
    seed: parseInteger('--seed', opts.seed),
  })
    .finally(() => {
      bar.stop();
      steps.stop();
    })
    .then(inCliWords);
  if (opts.report) {
    const data = quantizeReportData(input, opts.output, r.report, r.inputFileBytes, r.outputFileBytes);
    await writeFileAtomic(opts.report, [new TextEncoder().encode(renderReport(data, loadReportAssets()))], {
      force: opts.force ?? false,
      inputs: [input, opts.output],
    });
  }
  printResult(opts, input, r, formatReport(r.report));
  return r.report;
}

/** JSON has no Infinity: an exact reconstruction's SQNR is written as the string "inf". */
function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value)
    ? value > 0
      ? 'inf'
      : value < 0
        ? '-inf'
        : 'nan'
    : value;
}

export function formatReport(r: WeightOnlyReport): string {
  const rows = r.layers.map((l) => [
    l.weight,
    l.nodes.length > 1 ? `${l.nodes[0] as string} +${l.nodes.length - 1}` : (l.nodes[0] ?? ''),
    l.opTypes.join(','),
    l.scheme,
    l.form,
    l.sqnrDb === null ? '-' : Number.isFinite(l.sqnrDb) ? l.sqnrDb.toFixed(1) : 'inf',
    String(l.bytesBefore),
    String(l.bytesAfter),
    l.note,
  ]);
  const head = ['weight', 'node', 'op', 'scheme', 'form', 'SQNR dB', 'bytes before', 'bytes after', 'note'];
  const t = r.totals;
  return [
    formatTable(head, rows),
    `total weights: ${t.bytesBefore} → ${t.bytesAfter} bytes (${t.ratio.toFixed(3)}×); ${t.quantizedLayers} quantized, ${t.skippedLayers} kept fp32`,
    ...r.notes.map((n) => `note: ${n}`),
    '',
  ].join('\n');
}

// ---- mixed precision: options → flows/mixed-file.ts ----
function parseSize(text: string): number {
  const m = /^([\d.e+]+)\s*(B|kB|KB|MB|GB)?$/i.exec(text.trim());
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9 };
  const n = m ? Number(m[1]) * (units[(m[2] ?? 'b').toLowerCase()] ?? 1) : NaN;
  if (!(n > 0))
    throw new QuantkitError('QK_BAD_OPTION', `--target-size '${text}' is not a size`, 'e.g. --target-size 300MB');
  return n;
}

async function mixedCommand(input: string, opts: QuantizeCliOptions): Promise<void> {
  if (opts.scheme !== undefined)
    throw new QuantkitError(
      'QK_BAD_OPTION',
      '--scheme with --target-bits/--target-size: mixed precision picks the scheme per weight',
      'drop --scheme, or give the candidates with --schemes',
    );
  const bits = opts.targetBits === undefined ? undefined : Number(opts.targetBits);
  if (bits !== undefined && !(bits > 0))
    throw new QuantkitError('QK_BAD_OPTION', `--target-bits '${opts.targetBits}' is not a positive number`, 'e.g. 4.5');
  const bar = progressBar('sensitivity', opts.progress ?? false);
  const r = await quantizeMixedFile(input, opts.output, {
    calib: opts.calib,
    schemes: opts.schemes,
    exclude: opts.exclude,
    targetBits: bits,
    targetSize: opts.targetSize === undefined ? undefined : parseSize(opts.targetSize),
    maxLossIncrease: parseFraction(opts.maxLossIncrease, '--max-loss-increase'),
    awq: opts.awq ?? false,
    crossFit: opts.crossFit ?? false,
    loss: opts.loss,
    labels: opts.labels,
    guard: opts.guard,
    refit: opts.refit,
    force: opts.force ?? false,
    progress: bar.progress && ((done, total) => bar.progress?.(done, total, 1, 1)),
  })
    .finally(() => bar.stop())
    .then(inCliWords);
  const costOf = (w: string, label: string) =>
    r.sensitivity.weights.find((x) => x.weight === w)?.costs.find((c) => c.label === label);
  if (opts.json) {
    const layers = [...r.plan.choice].map(([w, c]) => ({ weight: w, scheme: c.label, ...costOf(w, c.label) }));
    process.stdout.write(`${JSON.stringify({ input, output: opts.output, layers, notes: r.notes }, null, 2)}\n`);
    return;
  }
  const rows = [...r.plan.choice].map(([w, c]) => {
    const cost = costOf(w, c.label);
    const params = r.sensitivity.weights.find((x) => x.weight === w)?.params ?? 1;
    return [w, c.label, cost ? ((cost.bytes * 8) / params).toFixed(2) : '-', cost ? cost.kl.toExponential(2) : '-'];
  });
  process.stdout.write(
    `${formatTable(['weight', 'scheme', 'bits', `${objectiveName(r.sensitivity.loss)} alone`], rows)}\n`,
  );
  for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
  process.stdout.write(`${r.outputFileBytes} bytes written to ${opts.output}\n`);
}

// ---- int8-dynamic / int8-static: options → flows/activation-file.ts ----
async function activationQuantizeCommand(input: string, opts: QuantizeCliOptions): Promise<void> {
  const scheme = opts.scheme as ActivationScheme;
  const batch = parseCalibBatch(opts.calibBatch);
  const alpha = opts.smoothquant === undefined ? undefined : opts.smoothquant === true ? 0.5 : Number(opts.smoothquant);
  if (alpha !== undefined && !(alpha >= 0 && alpha <= 1))
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--smoothquant '${String(opts.smoothquant)}' is not in [0, 1]`,
      'e.g. --smoothquant 0.5',
    );
  if (opts.activations !== undefined && opts.activations !== 'u8' && opts.activations !== 's8')
    throw new QuantkitError('QK_BAD_OPTION', `--activations '${opts.activations}' is not known`, "use 'u8' or 's8'");
  if (opts.target !== undefined && !isTarget(opts.target))
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--target '${opts.target}' is not known`,
      `use one of: ${TARGETS.join(', ')}`,
    );
  if (opts.dynamicForm !== undefined && opts.dynamicForm !== 'integer' && opts.dynamicForm !== 'contrib')
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--dynamic-form '${opts.dynamicForm}' is not known`,
      "use 'integer' or 'contrib'",
    );
  const bar = progressBar('calibrating', opts.progress ?? false);
  const r = await quantizeActivationFile(input, opts.output, {
    scheme,
    calib: opts.calib,
    method: opts.method,
    calibBatch: batch,
    smoothQuant: alpha,
    activationType: opts.activations === 's8' ? 'int8' : 'uint8',
    minConvReduction: parseMinConvReduction(opts.minConvReduction),
    dynamicForm: opts.dynamicForm as 'integer' | 'contrib' | undefined,
    perToken: opts.perToken ?? false,
    target: opts.target as Target | undefined,
    nonFinite: parseNonFinite(opts.nonFinite),
    exclude: opts.exclude,
    keepFirstLast: opts.keepFirstLast ?? false,
    force: opts.force ?? false,
    progress: bar.progress,
    verify: opts.verify,
  })
    .finally(() => bar.stop())
    .then(inCliWords);
  printResult(opts, input, r, formatActivationReport(r.report));
}

function parseAccuracyLevel(value: string | undefined): 0 | 1 | 2 | 3 | 4 | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (n === 0 || n === 1 || n === 2 || n === 3 || n === 4) return n;
  throw new QuantkitError(
    'QK_BAD_OPTION',
    `--accuracy-level '${value}' is not 0, 1, 2, 3 or 4`,
    'use 0 (fp32, default) or 4 (int8 activations, approximate)',
  );
}

function parseMinConvReduction(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (Number.isInteger(n) && n >= 0) return n;
  throw new QuantkitError(
    'QK_BAD_OPTION',
    `--min-conv-reduction '${value}' is not a whole number ≥ 0`,
    'e.g. --min-conv-reduction 16',
  );
}

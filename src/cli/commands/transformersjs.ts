import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { isTarget, TARGETS, type Target } from '../../passes/activation/weight-form.js';
import { parseTjsDtypes, TJS_DTYPES, type EmbeddingChoice } from '../../flows/transformersjs.js';
import { writeTransformersJs, type TjsRow } from '../../flows/transformersjs-file.js';
import { cliWording, inCliWords } from '../option-flags.js';
import { stepProgressBar } from '../progress.js';
import { formatBytes, formatTable } from '../table.js';
import { collectList } from '../flag-values.js';

interface TransformersJsFlags {
  dtypes?: string[];
  calib?: string[];
  force?: boolean;
  embeddings: string;
  externalThreshold?: string;
  target: string;
  quality: boolean;
  verify: boolean;
  json?: boolean;
  progress?: boolean;
}

function parseEmbeddings(text: string): EmbeddingChoice {
  if (text === 'auto' || text === 'on' || text === 'off') return text;
  throw new QuantkitError(
    'QK_BAD_OPTION',
    `--embeddings ${JSON.stringify(text)} is not auto, on or off`,
    'use --embeddings auto|on|off',
  );
}

function parseBytes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--external-threshold ${JSON.stringify(text)} is not a byte count`,
      'pass a non-negative integer, e.g. --external-threshold 1073741824',
    );
  return Number(text);
}

function parseTarget(text: string): Target {
  if (isTarget(text)) return text;
  throw new QuantkitError(
    'QK_BAD_OPTION',
    `--target ${JSON.stringify(text)} is not a known CPU`,
    `use one of ${TARGETS.join(', ')}`,
  );
}

function qualityCells(r: TjsRow): [string, string] {
  if (!r.quality) return ['—', '—'];
  return [r.quality.cosine.toFixed(5), r.quality.top1 === undefined ? '—' : `${(100 * r.quality.top1).toFixed(1)} %`];
}

export function registerTransformersJs(program: Command): void {
  program
    .command('transformersjs')
    .description(
      'write every transformers.js dtype file (onnx/<part>_q4.onnx …) for each part of a model folder, with a table of size and quality vs fp32',
    )
    .argument(
      '<model-folder>',
      'folder with config.json and onnx/<part>.onnx (model, encoder_model, decoder_model_merged, …)',
    )
    .option('--dtypes <list>', `dtypes to write, comma-separated (default all: ${TJS_DTYPES.join(',')})`, collectList)
    .option(
      '--calib <files...>',
      '[input_ids=]ids.npy int64 [N, T] token ids: GPTQ for q4/q4f16/bnb4, and the quality inputs',
    )
    .option(
      '--embeddings <when>',
      'q4/q4f16 embedding tables as GatherBlockQuantized: auto (when ≥ 15 % of the weights), on, off',
      'auto',
    )
    .option(
      '--external-threshold <bytes>',
      'output weight bytes from which a file gets <file>.onnx_data (default 1 GiB)',
    )
    .option(
      '--target <cpu>',
      `q8/int8 weights for the CPU that runs them: any (pair-safe s8, exact without VNNI) or vnni|arm|wasm (full range)`,
      'any',
    )
    .option('-f, --force', 'replace existing dtype files')
    .option('--no-quality', 'skip the comparison with fp32')
    .option('--no-verify', 'do not load and run each written file in ONNX Runtime')
    .option('--json', 'print the rows as JSON')
    .option('--progress', 'show a progress bar even when stderr is not a terminal')
    .action(async (folder: string, flags: TransformersJsFlags) => {
      const dtypes = flags.dtypes?.length ? parseTjsDtypes(flags.dtypes) : undefined;
      const bar = stepProgressBar(flags.progress ?? false);
      let r;
      try {
        r = await writeTransformersJs(folder, {
          dtypes,
          calib: flags.calib,
          force: flags.force ?? false,
          embeddings: parseEmbeddings(flags.embeddings),
          externalThreshold: parseBytes(flags.externalThreshold),
          target: parseTarget(flags.target),
          quality: flags.quality,
          verify: flags.verify,
          onStep: bar.progress,
        });
      } finally {
        bar.stop();
      }
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(inCliWords({ ...r }), null, 2)}\n`);
        return;
      }
      const rows = r.rows.map((row) => [
        row.part,
        row.dtype,
        `onnx/${row.file}${row.dataFile ? ' + _data' : ''}`,
        formatBytes(row.bytes),
        `${row.ratio.toFixed(3)}×`,
        ...qualityCells(row),
        row.how,
      ]);
      process.stdout.write(
        `${formatTable(['part', 'dtype', 'file', 'size', 'ratio', 'cosine', 'top-1', 'how'], rows)}\n`,
      );
      const inputs = [...new Set(r.rows.flatMap((row) => (row.quality ? [row.quality.inputs] : [])))];
      if (inputs.length > 0) process.stdout.write(`quality vs fp32 in ONNX Runtime on ${inputs.join('; ')}\n`);
      if (r.configUpdated)
        process.stdout.write('config.json: transformers.js_config.use_external_data_format updated\n');
      for (const n of r.notes) process.stdout.write(`note: ${cliWording(n)}\n`);
    });
}

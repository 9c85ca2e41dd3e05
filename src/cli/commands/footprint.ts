import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { modelFromProto } from '../../graph/from-onnx.js';
import {
  ALL_FOOTPRINT_FORMATS,
  FOOTPRINT_FORMATS,
  footprint,
  type FootprintFormat,
  type FootprintReport,
} from '../../quant/footprint.js';
import type { ScaleDtype } from '../../quant/scale-dtype.js';
import { openOnnxFile } from '../../node/model-file.js';
import { formatTable } from '../table.js';

interface FootprintOptions {
  params?: string;
  formats?: string;
  groupSize: string;
  scaleDtype: string;
  zeroPoint?: boolean;
  doubleQuant?: boolean;
  kmeansBits: string;
  json?: boolean;
}

/** Decimal units, as model sizes are quoted (13e9 params in fp32 = 52 GB). */
export function formatDecimalBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : Number(v.toPrecision(4))} ${units[u]}`;
}

function parseFormats(text: string | undefined): FootprintFormat[] | undefined {
  if (!text) return undefined;
  return text.split(',').map((f) => {
    const name = f.trim() as FootprintFormat;
    if (!ALL_FOOTPRINT_FORMATS.includes(name)) {
      throw new QuantkitError(
        'QK_BAD_FLAG',
        `--formats: unknown format '${f}'`,
        `use some of ${ALL_FOOTPRINT_FORMATS.join(',')}`,
      );
    }
    return name;
  });
}

function parseParams(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) {
    throw new QuantkitError(
      'QK_BAD_FLAG',
      `--params '${text}' is not a whole number of parameters`,
      'write it like 13e9 or 7000000000',
    );
  }
  return n;
}

export function registerFootprint(program: Command): void {
  program
    .command('footprint')
    .description(
      'bytes a model takes in fp32, fp16, bf16, fp8, int8, int4 and NF4, with and without per-block constants',
    )
    .argument('[model]', 'ONNX model file (or give --params)')
    .option('--params <n>', 'a parameter count instead of a model, e.g. 13e9')
    .option(
      '--formats <list>',
      `comma-separated subset of ${ALL_FOOTPRINT_FORMATS.join(',')} (default ${FOOTPRINT_FORMATS.join(',')})`,
    )
    .option('--kmeans-bits <n>', 'kmeans: index width 1…8 (a float32 codebook of 2^bits per tensor)', '4')
    .option('--group-size <n>', 'elements per block of constants (int8/int4/nf4)', '64')
    .option('--scale-dtype <t>', 'storage of each block constant: float32, float16 or bfloat16', 'float32')
    .option('--zero-point', 'asymmetric int formats: count a zero point per block')
    .option('--double-quant', 'QLoRA double quantization of the block constants')
    .option('--json', 'print the report as JSON')
    .action((modelPath: string | undefined, opts: FootprintOptions) => {
      if ((modelPath === undefined) === (opts.params === undefined)) {
        throw new QuantkitError(
          'QK_BAD_FLAG',
          'footprint needs exactly one of a model file or --params',
          'e.g. quantkit footprint model.onnx, or quantkit footprint --params 13e9',
        );
      }
      const groupSize = Number(opts.groupSize);
      if (!['float32', 'float16', 'bfloat16'].includes(opts.scaleDtype)) {
        throw new QuantkitError(
          'QK_BAD_FLAG',
          `--scale-dtype '${opts.scaleDtype}' is not float32, float16 or bfloat16`,
          'pick one of those',
        );
      }
      const common = {
        formats: parseFormats(opts.formats),
        groupSize,
        scaleDtype: opts.scaleDtype as ScaleDtype,
        zeroPoint: opts.zeroPoint ?? false,
        doubleQuant: opts.doubleQuant ?? false,
        kmeansBits: Number(opts.kmeansBits),
      };
      let report: FootprintReport;
      if (modelPath !== undefined) {
        const file = openOnnxFile(modelPath);
        try {
          const model = modelFromProto(file.proto, { external: file.external, label: modelPath });
          const tensors = [...model.graph.initializers.values()].map((t) => ({
            name: t.name,
            dims: t.dims,
            dtype: t.dtype,
          }));
          report = footprint({ tensors }, common);
        } finally {
          file.close();
        }
      } else {
        report = footprint({ params: parseParams(opts.params as string) }, common);
      }
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(report, null, 2)}\n`
          : renderFootprint(report, modelPath !== undefined, groupSize, opts),
      );
    });
}

function renderFootprint(r: FootprintReport, fromModel: boolean, groupSize: number, opts: FootprintOptions): string {
  const constants = `${opts.doubleQuant ? 'double-quantized ' : ''}${opts.scaleDtype} constants per ${groupSize}${opts.zeroPoint ? ' + zero points' : ''}`;
  const lines = [`${r.params.toLocaleString('en-US')} parameters`, ''];
  lines.push(
    formatTable(
      ['format', 'weights only', `with ${constants}`, 'bits/param'],
      r.rows.map((row) => [
        row.format,
        formatDecimalBytes(row.weightBytes),
        formatDecimalBytes(row.weightBytes + row.constantBytes + row.otherBytes),
        row.bitsPerParam.toFixed(3),
      ]),
    ),
  );
  if (fromModel) {
    lines.push('', 'largest tensors:');
    lines.push(
      formatTable(
        ['name', 'dtype', 'dims', 'params', 'bytes'],
        r.biggest.map((t) => [
          t.name,
          t.dtype,
          `[${t.dims.join(', ')}]`,
          String(t.params),
          formatDecimalBytes(t.bytes),
        ]),
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

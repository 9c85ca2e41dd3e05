import type { Command } from 'commander';
import { modelFromProto } from '../../graph/from-onnx.js';
import { inspectModel, type InspectReport } from '../../flows/inspect.js';
import { openOnnxFile } from '../../node/model-file.js';
import { modelDirFiles } from '../../node/files.js';
import { isQuantkitError, QuantkitError } from '../../errors.js';
import { formatBytes, formatTable } from '../table.js';
import { cliWording } from '../option-flags.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description(
      'opsets, op counts, inputs/outputs, parameters and bytes by dtype, largest tensors, what can be quantized',
    )
    .argument('<model>', 'ONNX model file')
    .option('--json', 'print the report as JSON')
    .option('--top <n>', 'how many of the largest tensors to list', '10')
    .action((path: string, opts: { json?: boolean; top: string }) => {
      const top = parseTop(opts.top);
      const file = openOnnxFile(path);
      try {
        const model = modelFromProto(file.proto, { external: file.external, label: path });
        const report = inspectModel(model, top);
        const warnings = externalDataWarnings(path, report.externalDataFiles);
        process.stdout.write(
          opts.json
            ? `${JSON.stringify({ ...report, warnings }, null, 2)}\n`
            : renderInspect(path, report) + warnings.map((w) => `warning: ${w}\n`).join(''),
        );
      } finally {
        file.close();
      }
    });
}

function parseTop(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--top ${JSON.stringify(text)} is not a positive whole number`,
      'e.g. --top 20',
    );
  }
  return Number(text);
}

/**
 * Inspect reads only the graph, so a data file that convert and quantize would refuse (outside
 * the model's folder, through '..', an absolute path or a symlink, or missing) is said here.
 */
function externalDataWarnings(path: string, locations: readonly string[]): string[] {
  if (locations.length === 0) return [];
  const files = modelDirFiles(path);
  const warnings: string[] = [];
  try {
    for (const loc of locations) {
      try {
        files.open(loc);
      } catch (e) {
        if (!isQuantkitError(e)) throw e;
        const why =
          e.code === 'QK_EXTERNAL_DATA_OUTSIDE_MODEL_DIR'
            ? "they read external data only from the model's folder or below it"
            : e.message;
        warnings.push(
          cliWording(
            `external data ${JSON.stringify(loc)}: convert, quantize and run will refuse this model (${why}); ${e.hint ?? ''}`.replace(
              /; $/,
              '',
            ),
          ),
        );
      }
    }
  } finally {
    files.close();
  }
  return warnings;
}

const dimsText = (dims: readonly (number | string | null)[] | null) =>
  dims ? `[${dims.map((d) => d ?? '?').join(', ')}]` : '[?]';

export function renderInspect(path: string, r: InspectReport): string {
  const out: string[] = [];
  out.push(
    `${path}: IR ${r.irVersion}, opsets ${Object.entries(r.opsets)
      .map(([d, v]) => `${d} ${v}`)
      .join(', ')}${r.producer ? `, from ${r.producer}` : ''}`,
  );
  const other = r.otherTensors.tensors
    ? `; ${r.otherTensors.tensors} integer tensors (shapes, indices) not counted`
    : '';
  out.push(
    `parameters: ${r.parameters.toLocaleString('en-US')} in ${formatBytes(r.parameterBytes)} (float tensors and quantized weights${other})`,
  );
  for (const v of r.inputs) out.push(`  input  ${v.name} ${v.dtype}${dimsText(v.dims)}`);
  for (const v of r.outputs) out.push(`  output ${v.name} ${v.dtype}${dimsText(v.dims)}`);
  if (r.externalDataFiles.length) out.push(`external data: ${r.externalDataFiles.join(', ')}`);
  out.push(
    '',
    formatTable(
      ['op', 'count'],
      Object.entries(r.opCounts)
        .sort((a, b) => b[1] - a[1])
        .map(([op, n]) => [op, String(n)]),
    ),
  );
  out.push(
    '',
    formatTable(
      ['dtype', 'tensors', 'elements', 'bytes'],
      Object.entries(r.byDtype).map(([d, s]) => [d, String(s.tensors), String(s.params), formatBytes(s.bytes)]),
    ),
  );
  out.push(
    '',
    'largest tensors:',
    formatTable(
      ['name', 'dtype', 'dims', 'bytes', 'where'],
      r.largest.map((t) => [t.name, t.dtype, dimsText(t.dims), formatBytes(t.bytes), t.location]),
    ),
  );
  const yes = r.quantizable.filter((q) => q.quantizable);
  const no = r.quantizable.filter((q) => !q.quantizable);
  out.push('', `quantizable weights: ${yes.length} of ${r.quantizable.length} initializers`);
  // Integer tensors (shapes, indices) are never weights; the table counts them instead of listing them.
  const listedNo = no.filter(
    (q) =>
      !q.reason.startsWith('already int') &&
      !q.reason.startsWith('already uint') &&
      !q.reason.startsWith('already bool'),
  );
  const readBy = (names: string[]) =>
    names.length === 0 ? '' : names.length === 1 ? (names[0] as string) : `${names[0] as string} +${names.length - 1}`;
  out.push(
    formatTable(
      ['tensor', 'read by', 'quantizable', 'why'],
      [...yes, ...listedNo].map((q) => [q.name, readBy(q.readers), q.quantizable ? 'yes' : 'no', q.reason]),
    ),
  );
  if (listedNo.length < no.length)
    out.push(`(${no.length - listedNo.length} integer tensors — shapes, indices — not listed; --json has them all)`);
  return `${out.join('\n')}\n`;
}

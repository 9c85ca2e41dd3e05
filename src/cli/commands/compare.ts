import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { compareModels, type CompareReport } from '../../flows/compare.js';
import { nodeRuntime } from '../../node/ort-runtime.js';
import { modelFromProto } from '../../graph/from-onnx.js';
import { decodeModel } from '../../io/onnx/proto.js';
import type { Tensor } from '../../tensor/tensor.js';
import { readOnnxFileInlined } from '../../node/model-file.js';
import { parseInputBinding, readTensorFile } from '../inputs.js';
import { formatTable } from '../table.js';

interface CompareCliOptions {
  input: string[];
  labels?: string;
  json?: boolean;
  perLayer?: boolean;
  batch: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description(
      'run two models in ONNX Runtime on the same inputs: SQNR, cosine, max error, mean |diff|, top-1 agreement, accuracy',
    )
    .argument('<a>', 'reference ONNX model (e.g. the fp32 original)')
    .argument('<b>', 'model to compare (e.g. its quantized version)')
    .requiredOption(
      '-i, --input <[name=]file>',
      'input array (.npy or .pb), first axis = samples; repeat per model input',
      collect,
      [],
    )
    .option('--labels <file>', "class ids (.npy int64), one per row of the outputs' last axis: accuracy of both")
    .option('--per-layer', 'static QDQ models: SQNR of every quantized activation against its fp32 twin')
    .option('--batch <n>', 'samples per ONNX Runtime run', '32')
    .option('--json', 'print the report as JSON')
    .action(async (a: string, b: string, opts: CompareCliOptions) => {
      if (opts.input.length === 0)
        throw new QuantkitError(
          'QK_INPUT_MISSING',
          'compare needs the inputs to run both models on',
          'pass --input [name=]x.npy (first axis = samples), once per model input',
        );
      // External data resolved from each model's own folder (ONNX Runtime given bytes would look in the working directory).
      const aBytes = readOnnxFileInlined(a);
      const bBytes = readOnnxFileInlined(b);
      const inputNames = modelFromProto(decodeModel(aBytes, a), { label: a }).graph.inputs.map((v) => v.name);
      const inputs = new Map<string, Tensor>();
      let positional = 0;
      for (const arg of opts.input) {
        const binding = parseInputBinding(arg);
        const name = binding.name ?? inputNames[positional++];
        if (name === undefined)
          throw new QuantkitError(
            'QK_TOO_MANY_INPUTS',
            `${opts.input.length} inputs given but ${a} takes ${inputNames.length} (${inputNames.join(', ')})`,
            'drop the extra --input',
          );
        if (!inputNames.includes(name))
          throw new QuantkitError(
            'QK_UNKNOWN_INPUT',
            `${a} has no input named '${name}'`,
            `its inputs are: ${inputNames.join(', ')}`,
          );
        inputs.set(name, readTensorFile(binding.path));
      }
      const batch = Number.parseInt(opts.batch, 10);
      if (!(batch > 0))
        throw new QuantkitError('QK_BAD_OPTION', `--batch ${opts.batch} is not a positive integer`, 'e.g. --batch 32');
      const report = await compareModels(
        aBytes,
        bBytes,
        {
          inputs,
          labels: opts.labels ? readTensorFile(opts.labels) : undefined,
          perLayer: opts.perLayer ?? false,
          batchSize: batch,
        },
        nodeRuntime,
      );
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(report, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v), 2)}\n`
          : renderCompare(a, b, report),
      );
    });
}

const db = (v: number) => (v === Infinity ? 'exact' : v.toFixed(2));
const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(2)} %`);

export function renderCompare(a: string, b: string, r: CompareReport): string {
  const out = [`${b} against ${a} over ${r.samples} samples`, ''];
  out.push(
    formatTable(
      ['output', 'SQNR dB', 'cosine', 'max |err|', 'mean |diff|', 'top-1 agree', 'acc a', 'acc b'],
      r.outputs.map((o) => [
        o.name,
        db(o.sqnrDb),
        o.cosine.toFixed(6),
        o.maxAbsError.toPrecision(4),
        o.meanAbsDiff.toPrecision(4),
        pct(o.top1Agreement),
        pct(o.accuracyA),
        pct(o.accuracyB),
      ]),
    ),
  );
  if (r.layers) {
    out.push(
      '',
      r.layers.length
        ? 'quantized activations (worst first):'
        : 'no quantized activations found (is b a static QDQ model of a?)',
    );
    if (r.layers.length) {
      const rows = [...r.layers].sort((x, y) => x.sqnrDb - y.sqnrDb);
      out.push(
        formatTable(
          ['tensor', 'SQNR dB', 'cosine'],
          rows.map((l) => [l.tensor, db(l.sqnrDb), l.cosine.toFixed(6)]),
        ),
      );
    }
  }
  return `${out.join('\n')}\n`;
}

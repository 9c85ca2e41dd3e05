import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import { convertFile } from '../../flows/convert.js';
import type { DataFileNaming } from '../../node/model-writer.js';
import { describeVerification } from '../../node/verify-model.js';
import { cliWording } from '../option-flags.js';

interface ConvertFlags {
  externalData?: boolean;
  threshold?: string;
  dataName: string;
  force?: boolean;
  verify: boolean;
}

function parseThreshold(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--threshold ${JSON.stringify(text)} is not a byte count`,
      'pass a non-negative integer, e.g. --threshold 1024',
    );
  }
  return Number(text);
}

function parseNaming(text: string): DataFileNaming {
  if (text === 'onnx.data' || text === 'data') return 'onnx.data';
  if (text === 'onnx_data') return 'onnx_data';
  throw new QuantkitError(
    'QK_BAD_OPTION',
    `--data-name ${JSON.stringify(text)} is not a known naming`,
    "use 'onnx.data' (model.onnx.data) or 'onnx_data' (model.onnx_data, as transformers.js expects)",
  );
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description(
      'ONNX → ONNX (inline ↔ external data), ONNX initializers → safetensors, safetensors → safetensors; tensor bytes unchanged',
    )
    .argument('<in>', 'input .onnx or .safetensors')
    .argument('<out>', 'output .onnx or .safetensors (the extension picks the format)')
    .option('--external-data', 'store tensors of --threshold bytes or more in <out>.data beside the model')
    .option('--threshold <bytes>', 'smallest tensor that goes to external data (default 1024)')
    .option(
      '--data-name <naming>',
      "external data file naming: 'onnx.data' (model.onnx.data) or 'onnx_data' (model.onnx_data)",
      'onnx.data',
    )
    .option('-f, --force', 'replace existing output files')
    .option('--no-verify', 'ONNX output: do not load and run it in ONNX Runtime before reporting success')
    .action(async (input: string, output: string, flags: ConvertFlags) => {
      const threshold = parseThreshold(flags.threshold);
      if (threshold !== undefined && !flags.externalData) {
        throw new QuantkitError(
          'QK_BAD_OPTION',
          '--threshold needs --external-data',
          'add --external-data, or drop --threshold',
        );
      }
      const r = await convertFile(input, output, {
        externalData: flags.externalData ?? false,
        ...(threshold === undefined ? {} : { threshold }),
        dataNaming: parseNaming(flags.dataName),
        force: flags.force ?? false,
        verify: flags.verify,
      });
      const ext = r.dataPath ? `, ${r.externalTensors} in ${r.dataPath}` : '';
      const skipped = r.skipped.length
        ? ` (skipped ${r.skipped.length} without a ${r.to} dtype: ${r.skipped.slice(0, 5).join(', ')})`
        : '';
      const constants = r.constantsLeftOut
        ? `; left out ${r.constantsLeftOut} Constant-node values that are not weights (shapes, axes, scalars)`
        : '';
      process.stdout.write(`wrote ${output}: ${r.tensors} tensors${ext}${skipped}${constants}\n`);
      if (r.verification) process.stdout.write(`${cliWording(describeVerification(r.verification))}\n`);
    });
}

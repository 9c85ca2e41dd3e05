import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { QuantkitError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { decodeModel, encodeTensorProto } from '../../io/onnx/proto.js';
import { tensorToProto } from '../../io/onnx/tensor.js';
import { EMULATIONS, isEmulation } from '../../interp/emulate.js';
import { runModel } from '../../interp/run.js';
import { isRequantization, REQUANTIZATIONS } from '../../interp/requant.js';
import { writeFileAtomic } from '../../node/files.js';
import { parseInputBinding, readTensorFile } from '../inputs.js';
import { readOnnxFileInlined } from '../../node/model-file.js';
import { modelFromProto } from '../../graph/from-onnx.js';
import { checkInputArrays } from '../../flows/input-check.js';
import { summarizeTensor } from '../summary.js';
import { enableKernelWorkers, parseThreadsFlag } from '../threads.js';

interface RunOptions {
  input: string[];
  out?: string;
  force?: boolean;
  emulate?: string;
  requantize?: string;
  threads?: string;
  qdqAccuracyLevel?: string;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a model with the pure-TypeScript reference interpreter')
    .argument('<model>', 'ONNX model file')
    .requiredOption(
      '-i, --input <[name=]file>',
      'input tensor (.npy or TensorProto .pb); repeat for each input',
      collect,
      [],
    )
    .option('-o, --out <dir>', 'write outputs as dir/output_<i>.pb (TensorProto, name set)')
    .option('-f, --force', 'replace existing output files')
    .option(
      '--emulate <kernel>',
      `reproduce a CPU kernel's integer arithmetic: ${EMULATIONS.join(', ')} (x86 u8×s8 without VNNI: pairs of products saturate in int16)`,
    )
    .option(
      '--requantize <mode>',
      `how QLinearMatMul/QLinearConv requantize: ${REQUANTIZATIONS.join(', ')} (default float32, as ONNX Runtime's CPU kernels; float64 as the ONNX reference; fixed-point as gemmlowp/TFLite)`,
    )
    .option(
      '--threads <n>',
      "threads for the integer and 4-bit kernels ('all': every core; default 1, or QK_THREADS); outputs are the same for any count",
    )
    .option(
      '--qdq-accuracy-level <level>',
      "DequantizeLinear(4- or 8-bit) → MatMul as ONNX Runtime's session fuses it into MatMulNBits: 4 (default, as a default ORT session: A quantized to int8 per block) or 0 (exact float product, as session.qdq_matmulnbits_accuracy_level=0)",
    )
    .action(async (modelPath: string, opts: RunOptions) => {
      await runCommand(modelPath, opts);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function runCommand(modelPath: string, opts: RunOptions): Promise<void> {
  const emulate = opts.emulate;
  if (emulate !== undefined && !isEmulation(emulate))
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--emulate '${emulate}' is not known`,
      `use one of: ${EMULATIONS.join(', ')}`,
    );
  const requantize = opts.requantize;
  if (requantize !== undefined && !isRequantization(requantize))
    throw new QuantkitError(
      'QK_BAD_OPTION',
      `--requantize '${requantize}' is not known`,
      `use one of: ${REQUANTIZATIONS.join(', ')}`,
    );
  const qdqAccuracyLevel = parseQdqAccuracyLevel(opts.qdqAccuracyLevel);
  const threads = parseThreadsFlag(opts.threads);
  enableKernelWorkers();
  // External data read from the model's own folder: the interpreter takes one self-contained proto.
  const model = decodeModel(readOnnxFileInlined(modelPath), modelPath);
  const graph = model.graph;
  if (!graph) throw new QuantkitError('QK_MODEL_NO_GRAPH', `${modelPath} has no graph`, 'is this an ONNX model file?');
  const initializerNames = new Set(graph.initializer.map((t) => t.name));
  // Before IR 4 initializers were also listed as graph inputs; those are not for the user to bind.
  const graphInputs = graph.input.map((v) => v.name).filter((n) => !initializerNames.has(n));

  const bound = new Map<string, Tensor>();
  let positional = 0;
  for (const arg of opts.input) {
    const binding = parseInputBinding(arg);
    const name = binding.name ?? graphInputs[positional++];
    if (name === undefined) {
      throw new QuantkitError(
        'QK_TOO_MANY_INPUTS',
        `${opts.input.length} inputs given but ${modelPath} takes ${graphInputs.length} (${graphInputs.join(', ')})`,
        'drop the extra --input',
      );
    }
    if (!graphInputs.includes(name)) {
      throw new QuantkitError(
        'QK_UNKNOWN_INPUT',
        `${modelPath} has no input named '${name}'`,
        `its inputs are: ${graphInputs.join(', ')}`,
      );
    }
    bound.set(name, readTensorFile(binding.path));
  }

  checkInputArrays(modelFromProto(model, { label: modelPath }), bound, { option: 'inputs' });
  const outputs = runModel(model, bound, { emulate, requantize, threads, qdqAccuracyLevel });
  const names = graph.output.map((v) => v.name);
  if (opts.out) mkdirSync(opts.out, { recursive: true });
  for (const [i, name] of names.entries()) {
    const tensor = outputs.get(name);
    if (!tensor)
      throw new QuantkitError(
        'QK_OUTPUT_NOT_PRODUCED',
        `graph output '${name}' was not produced`,
        'the model may be malformed',
      );
    process.stdout.write(`output ${i} ${summarizeTensor(name, tensor)}\n`);
    if (opts.out) {
      const path = join(opts.out, `output_${i}.pb`);
      await writeFileAtomic(path, [encodeTensorProto(tensorToProto({ ...tensor, name }))], {
        force: opts.force ?? false,
        inputs: [modelPath, ...opts.input.map((a) => parseInputBinding(a).path)],
      });
    }
  }
}

function parseQdqAccuracyLevel(text: string | undefined): 0 | 4 | undefined {
  if (text === undefined) return undefined;
  if (text === '0' || text === '4') return Number(text) as 0 | 4;
  throw new QuantkitError(
    'QK_BAD_OPTION',
    `--qdq-accuracy-level '${text}' is not a level the interpreter computes`,
    'use 4 (what a default ONNX Runtime session computes) or 0 (the exact float product)',
  );
}

import { Command, CommanderError } from 'commander';
import { isQuantkitError } from '../errors.js';
import { cliWording, formatCliError } from './option-flags.js';

type Register = (program: Command) => void;

/**
 * Each command's module, imported only when that command runs: `quantkit quantize` then skips
 * the demo's models and report assets, the calibration and compare flows and the interpreter
 * (start-up is most of a small job's time). Listed in the order `--help` shows them.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  demo: async () => (await import('./commands/demo.js')).registerDemo,
  convert: async () => (await import('./commands/convert.js')).registerConvert,
  compare: async () => (await import('./commands/compare.js')).registerCompare,
  footprint: async () => (await import('./commands/footprint.js')).registerFootprint,
  inspect: async () => (await import('./commands/inspect.js')).registerInspect,
  quantize: async () => (await import('./commands/quantize.js')).registerQuantize,
  qat: async () => (await import('./commands/qat.js')).registerQat,
  run: async () => (await import('./commands/run.js')).registerRun,
  web: async () => (await import('./commands/web.js')).registerWeb,
  transformersjs: async () => (await import('./commands/transformersjs.js')).registerTransformersJs,
  bench: async () => (await import('./commands/bench.js')).registerBench,
  sensitivity: async () => (await import('./commands/sensitivity.js')).registerSensitivity,
  compress: async () => (await import('./commands/compress.js')).registerCompress,
  decompress: async () => (await import('./commands/compress.js')).registerDecompress,
  lora: async () => (await import('./commands/lora.js')).registerLora,
};

/**
 * The command argv names: commander's program itself takes no option with a value, so it is the
 * first argument not starting with '-'. Undefined (help, --version, a typo) registers them all,
 * so help lists every command and a typo gets commander's suggestion.
 */
function requestedCommand(argv: readonly string[]): string | undefined {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  return first !== undefined && Object.hasOwn(COMMANDS, first) ? first : undefined;
}

/**
 * Exit codes: 0 ok, 1 user error (bad flag, bad file, unsupported op: one line naming it and the
 * way out), 2 internal error (a bug: the stack is shown only with QK_DEBUG=1).
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('quantkit')
    .description('Quantize neural networks: bit-exact formats, quantizers, ONNX models ONNX Runtime runs')
    .version('0.1.0')
    .configureOutput({
      // One line, like every other user error: what is wrong, then where to look.
      outputError: (text, write) => write(`quantkit: ${text.trim()} (see quantkit --help)\n`),
    })
    .exitOverride();
  const only = requestedCommand(argv);
  const versionOnly = only === undefined && argv.slice(2).some((a) => a === '-V' || a === '--version');
  const names = versionOnly ? [] : only === undefined ? Object.keys(COMMANDS) : [only];
  const registers = await Promise.all(names.map((n) => (COMMANDS[n] as () => Promise<Register>)()));
  for (const register of registers) register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its one-line message; help/version are not failures.
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 1;
    }
    if (isQuantkitError(e)) {
      process.stderr.write(`quantkit: ${formatCliError(e)}\n`);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    // A ModelVerificationError (node/verify-model.ts) names the option that keeps the file.
    process.stderr.write(
      `quantkit: internal error: ${cliWording(err.message)} (please report it; set QK_DEBUG=1 for the stack)\n`,
    );
    if (process.env.QK_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    return 2;
  }
}

import { Command, CommanderError } from 'commander';
import { isQuantkitError } from '../errors.js';
import { registerCompare } from './commands/compare.js';
import { registerConvert } from './commands/convert.js';
import { registerDemo } from './commands/demo.js';
import { registerFootprint } from './commands/footprint.js';
import { registerInspect } from './commands/inspect.js';
import { registerQuantize } from './commands/quantize.js';
import { registerRun } from './commands/run.js';

/**
 * Exit codes: 0 ok, 1 user error (bad flag, bad file, unsupported op: one line naming it and the
 * way out), 2 internal error (a bug: the stack is shown only with QK_DEBUG=1).
 */
export function buildProgram(): Command {
  const program = new Command('quantkit')
    .description('Quantize neural networks: bit-exact formats, quantizers, ONNX models ONNX Runtime runs')
    .version('0.1.0')
    .configureOutput({
      // One line, like every other user error: what is wrong, then where to look.
      outputError: (text, write) => write(`quantkit: ${text.trim()} (see quantkit --help)\n`),
    })
    .exitOverride();
  registerDemo(program);
  registerConvert(program);
  registerCompare(program);
  registerFootprint(program);
  registerInspect(program);
  registerQuantize(program);
  registerRun(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its one-line message; help/version are not failures.
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 1;
    }
    if (isQuantkitError(e)) {
      process.stderr.write(`quantkit: ${e.format()}\n`);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`quantkit: internal error: ${err.message} (please report it; set QK_DEBUG=1 for the stack)\n`);
    if (process.env.QK_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    return 2;
  }
}



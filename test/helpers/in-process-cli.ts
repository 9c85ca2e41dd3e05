import { Command } from 'commander';
import { vi } from 'vitest';
import { registerQuantize } from '../../src/cli/commands/quantize.js';

/** `quantkit quantize` in this process, throwing where the CLI would exit. */
export function quantizeProgram(): Command {
  const p = new Command('quantkit').exitOverride();
  registerQuantize(p);
  return p;
}

/** Runs `quantkit quantize <args>` in this process. */
export function runQuantize(...args: string[]): Promise<Command> {
  return quantizeProgram().parseAsync(['node', 'quantkit', 'quantize', ...args]);
}

/** Collects what is written to stdout (and keeps it off the test log) until vi.restoreAllMocks(). */
export function captureStdout(): string[] {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out.push(String(s));
    return true;
  });
  return out;
}

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED = join(REPO, '..', 'shared');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source (through tsx), as a user would run the built `quantkit`. */
export function runCli(args: readonly string[], cwd = REPO): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli/bin.ts'), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, QK_DEBUG: '' },
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

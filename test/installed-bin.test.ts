import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The README's first command is `npm ci && npx quantkit demo`: npm ci builds dist/ (prepare), and
// npx runs the package's own bin from it. npm does not mark the root package's bin executable, so
// the build must; without it the shell answers "quantkit: Permission denied".
const root = new URL('..', import.meta.url).pathname;

describe('the installed command', () => {
  it('npx quantkit runs the built bin', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };
    const r = spawnSync('npx', ['--no-install', 'quantkit', '--version'], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).not.toContain('Permission denied');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers/cli.js';
import { writeMatMulStack } from './helpers/matmul-stack.js';

/*
 * Ctrl-C for real: the CLI is spawned, interrupted while its temp file or folder exists, and must
 * leave nothing behind and exit 130. To hit the write window on a loaded machine, the child is
 * frozen (SIGSTOP) the moment its temp file appears; SIGINT is queued while it is frozen and
 * handled as soon as it resumes (SIGCONT), long before the write that remains can finish.
 */

const root = mkdtempSync(join(tmpdir(), 'qk-signal-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli/bin.ts'), ...args], {
    cwd: REPO,
    env: { ...process.env, QK_DEBUG: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((done) => child.on('exit', (code, signal) => done({ code, signal, stderr })));
}

/** Resolves with the first entry of `dir` that `pick` accepts: one already there, or as soon as it is created. */
function whenCreated(dir: string, pick: (name: string) => boolean): Promise<string> {
  return new Promise((done) => {
    const w = watch(dir, (_event, name) => {
      if (name && pick(name)) {
        w.close();
        done(name);
      }
    });
    const there = readdirSync(dir).find(pick);
    if (there !== undefined) {
      w.close();
      done(there);
    }
  });
}

const ATTEMPTS = 3;

describe('SIGINT removes what the process created', () => {
  it('mid-write: no hidden .tmp left beside the output, no output, exit 130', async () => {
    const modelDir = join(root, 'model');
    mkdirSync(modelDir);
    // 64 MB of external data: `convert` copies it in many chunk writes and an fsync before any rename.
    const input = await writeMatMulStack(modelDir, { layers: 4, side: 2048, fill: 'sparse' });
    let caught = false;
    for (let attempt = 0; attempt < ATTEMPTS && !caught; attempt++) {
      const out = join(root, `out-${attempt}`);
      mkdirSync(out);
      const created = whenCreated(out, (n) => n.endsWith('.tmp'));
      const child = spawnCli(['convert', input, join(out, 'm.onnx'), '--external-data']);
      const exited = exitOf(child);
      await created;
      child.kill('SIGSTOP');
      // Frozen now. Only the data file's temp (written first, published last) is a safe moment:
      // once the model's temp exists too, the renames are a few steps away. Otherwise try again.
      const temps = readdirSync(out).filter((n) => n.endsWith('.tmp'));
      caught = temps.length === 1 && (temps[0] as string).includes('.m.onnx.data.');
      if (caught) child.kill('SIGINT');
      child.kill('SIGCONT');
      const r = await exited;
      if (!caught) continue;
      expect(r.stderr).toBe('');
      expect(r.code).toBe(130);
      expect(readdirSync(out)).toEqual([]);
    }
    expect(caught, `the write finished before SIGSTOP in all ${ATTEMPTS} attempts`).toBe(true);
  });
});

describe('SIGINT during demo', () => {
  it('removes its temp folder of quantized models, exit 130', async () => {
    // The child's own temp root, so only its folder is watched (other runs may be demoing too).
    const tmp = join(root, 'tmp');
    mkdirSync(tmp);
    const created = whenCreated(tmp, (n) => n.startsWith('quantkit-demo-'));
    // Three rows: the signal comes once the first row's model is in the folder, two rows before the end.
    const child = spawnCli(['demo', '--model', 'cnn', '--schemes', 'int8,fp16,bf16'], { TMPDIR: tmp });
    const exited = exitOf(child);
    const folder = join(tmp, await created);
    await whenCreated(folder, (n) => n.endsWith('.onnx'));
    child.kill('SIGINT');
    const r = await exited;
    expect(r.code).toBe(130);
    expect(readdirSync(tmp).filter((n) => n.startsWith('quantkit-demo-'))).toEqual([]);
  });
});

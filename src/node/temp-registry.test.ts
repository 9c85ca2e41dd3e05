import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './files.js';
import { removeTrackedTemps, trackTemp, trackedTemps, untrackTemp } from './temp-registry.js';

const root = mkdtempSync(join(tmpdir(), 'qk-temp-registry-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('temp registry', () => {
  it('removes tracked files and folders, and nothing untracked or never tracked', () => {
    const file = join(root, 'a.tmp');
    const folder = join(root, 'scratch');
    const released = join(root, 'published.onnx');
    const bystander = join(root, 'not-ours.onnx');
    writeFileSync(file, 'x');
    mkdirSync(folder);
    writeFileSync(join(folder, 'inner.onnx'), 'x');
    writeFileSync(released, 'x');
    writeFileSync(bystander, 'x');
    trackTemp(file);
    trackTemp(folder);
    trackTemp(released);
    untrackTemp(released);
    trackTemp(join(root, 'already-gone.tmp'));
    removeTrackedTemps();
    expect([existsSync(file), existsSync(folder), existsSync(released), existsSync(bystander)]).toEqual([
      false,
      false,
      true,
      true,
    ]);
    expect(trackedTemps()).toEqual([]);
  });

  it('an atomic write tracks its temp file while it streams, and releases it once published or failed', async () => {
    const target = join(root, 'out.bin');
    const seen: string[][] = [];
    async function* chunks() {
      yield Uint8Array.from([1]);
      seen.push([...trackedTemps()]);
      yield Uint8Array.from([2]);
    }
    await writeFileAtomic(target, chunks(), { force: false });
    expect(seen[0]?.map((p) => basename(p))).toEqual([expect.stringMatching(/^\.out\.bin\.\d+\.[0-9a-f]{12}\.tmp$/)]);
    expect(trackedTemps()).toEqual([]);
    async function* failing() {
      yield Uint8Array.from([1]);
      throw new Error('tensor 3 failed');
    }
    await expect(writeFileAtomic(join(root, 'fail.bin'), failing(), { force: false })).rejects.toThrow(
      'tensor 3 failed',
    );
    expect(trackedTemps()).toEqual([]);
  });
});

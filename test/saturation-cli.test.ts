import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('quantize --target and run --emulate', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'qk-sat-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the default writes pair-safe weights and says why; --target vnni writes full range', () => {
    const safe = runCli([
      'quantize',
      'models/cnn.onnx',
      '-o',
      join(dir, 'safe.onnx'),
      '--scheme',
      'int8-static',
      '--calib',
      'models/cnn-calib-x.npy',
      '--json',
    ]);
    expect(safe.code).toBe(0);
    const s = JSON.parse(safe.stdout) as {
      weights: { form: string; target: string; channels: number; reducedChannels: number; reason: string };
    };
    expect(s.weights.form).toBe('pair-safe');
    expect(s.weights.target).toBe('any');
    expect(s.weights.reason).toMatch(/cannot saturate/);
    const full = runCli([
      'quantize',
      'models/cnn.onnx',
      '-o',
      join(dir, 'full.onnx'),
      '--scheme',
      'int8-dynamic',
      '--target',
      'vnni',
    ]);
    expect(full.code).toBe(0);
    expect(full.stdout).toMatch(/weights: full-range s8 \[-127, 127\] for --target vnni/);
  });

  it('an unknown --target or --emulate is exit 1 naming the valid values', () => {
    const t = runCli([
      'quantize',
      'models/cnn.onnx',
      '-o',
      join(dir, 'x.onnx'),
      '--scheme',
      'int8-dynamic',
      '--target',
      'avx2',
    ]);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/--target 'avx2'.*any, vnni, arm, wasm/s);
    const e = runCli(['run', 'models/cnn.onnx', '--input', 'models/cnn-calib-x.npy', '--emulate', 'avx9']);
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/--emulate 'avx9'.*avx2-u8s8/s);
  });

  it('--target is refused for weight-only schemes', () => {
    const r = runCli([
      'quantize',
      'models/cnn.onnx',
      '-o',
      join(dir, 'w.onnx'),
      '--scheme',
      'int8',
      '--target',
      'vnni',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--target does not apply/);
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('quantkit quantize --scheme kmeans, footprint --formats kmeans', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-kmeans-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a model ORT runs; the report gives index, codebook and shape bytes per layer', () => {
    const out = join(dir, 'cnn-km.onnx');
    const r = runCli(['quantize', 'models/cnn.onnx', '-s', 'kmeans', '--bits', '2', '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      verification: { status: string };
      layers: { weight: string; scheme: string; bytesAfter: number; note: string }[];
    };
    expect(report.verification.status).toBe('verified');
    const fc1 = report.layers.find((l) => l.weight === 'fc1.weight');
    // 256 · 128 weights at 2 bits, a 4-entry float32 codebook.
    expect(fc1?.scheme).toBe('kmeans2');
    expect(fc1?.note).toMatch(/indices packed 4 to a byte \(2-bit slots\): 8192 index \+ 16 codebook/);
  });

  it('refuses flags the scheme does not read, and --bits for other schemes, naming who reads them', () => {
    const a = runCli(['quantize', 'models/cnn.onnx', '-s', 'kmeans', '--rtn', '-o', join(dir, 'x.onnx')]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/QK_OPTION_NOT_FOR_SCHEME: --rtn/);
    const b = runCli(['quantize', 'models/cnn.onnx', '-s', 'q4', '--bits', '3', '-o', join(dir, 'x.onnx')]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/it is for kmeans/);
  });

  it('footprint tables kmeans at the asked width', () => {
    const r = runCli(['footprint', 'models/cnn.onnx', '--formats', 'fp32,kmeans', '--kmeans-bits', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = (JSON.parse(r.stdout) as { rows: { format: string; bitsPerParam: number }[] }).rows;
    const km = rows.find((x) => x.format === 'kmeans');
    expect(km?.bitsPerParam).toBeGreaterThan(4);
    expect(km?.bitsPerParam).toBeLessThan(4.3); // small tensors: a 64-byte codebook each
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeModelBytes } from '../src/flows/quantize.js';
import { readFileSync } from 'node:fs';
import { runCli } from './helpers/cli.js';

const lm = new URL('../models/lm.onnx', import.meta.url).pathname;

describe('weight-only progress', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-progress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the pass reports each weight tensor, ending at total/total', () => {
    const calls: [number, number][] = [];
    const q = quantizeModelBytes(readFileSync(lm), {
      scheme: 'nf4',
      progress: (done, total) => calls.push([done, total]),
    });
    const tensors = q.report.layers.length;
    expect(calls.map((c) => c[0])).toEqual([...Array.from({ length: tensors }, (_, i) => i), tensors]);
    expect(new Set(calls.map((c) => c[1]))).toEqual(new Set([tensors]));
  });

  it('--progress draws the bar on stderr (a pipe here, so only when forced); without it, stderr stays empty', () => {
    const forced = runCli(['quantize', lm, '-o', join(dir, 'a.onnx'), '--scheme', 'nf4', '--progress']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(/quantizing weights \(nf4\) \[.*\] 14\/14/);
    const quiet = runCli(['quantize', lm, '-o', join(dir, 'b.onnx'), '--scheme', 'nf4']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toMatch(/quantizing weights/);
  });
});

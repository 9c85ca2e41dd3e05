import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeModel, type ModelSpec } from '../src/io/onnx/build.js';
import { encodeModel } from '../src/io/onnx/proto.js';
import { runCli } from './helpers/cli.js';

/*
 * Every model the CLI writes is loaded and run in onnxruntime-node before it reports success
 * (node/verify-model.ts); one ONNX Runtime refuses is deleted and reported as an internal error.
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'qk-verify-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const opset9 = new URL('fixtures/opset/net-opset9-constants.onnx', import.meta.url).pathname;

/** A MatMul followed by `tail` (ops ONNX Runtime refuses), input x [N, 64]. */
function model(name: string, opset: Record<string, number>, tail: ModelSpec['nodes']): string {
  const w = {
    dtype: 'float32' as const,
    dims: [64, 32],
    data: Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i) / 8),
  };
  const path = join(dir, name);
  writeFileSync(
    path,
    encodeModel(
      makeModel({
        nodes: [{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['h'], name: 'mm' }, ...tail],
        inputs: [{ name: 'x', dtype: 'float32', dims: ['N', 64] }],
        outputs: [{ name: 'y', dtype: 'float32' }],
        initializers: { w },
        opsets: opset,
      }),
    ),
  );
  return path;
}

describe('quantize and convert check what they wrote in ONNX Runtime', () => {
  it('opset-9 model, weights in Constant nodes, int8-dynamic: opset raised to 11, verified in ONNX Runtime (exit 0)', () => {
    const out = join(dir, 'dyn9.onnx');
    const r = runCli(['quantize', opset9, '-o', out, '--scheme', 'int8-dynamic', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as {
      verification: { status: string; feeds: { name: string; dims: number[] }[] };
      notes: string[];
    };
    expect(j.verification).toMatchObject({ status: 'verified', feeds: [{ name: 'x', dims: [1, 1, 8, 8] }] });
    expect(j.notes.join('\n')).toMatch(/opset raised from 9 to 11 for DynamicQuantizeLinear; Clip, Slice rewritten/);
  });

  it('an op ONNX Runtime does not know: exit 2 with its message, no output left; --no-verify keeps the file', () => {
    const input = model('custom.onnx', { '': 13, 'com.example': 1 }, [
      { opType: 'Frobnicate', domain: 'com.example', inputs: ['h'], outputs: ['y'] },
    ]);
    const out = join(dir, 'custom-int8.onnx');
    const r = runCli(['quantize', input, '-o', out, '--scheme', 'int8']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /internal error: ONNX Runtime \(onnxruntime-node [\d.]+\) cannot load the model written by quantize --scheme int8: .*com\.example:Frobnicate.* is not a registered function\/op/,
    );
    expect(existsSync(out)).toBe(false);
    const kept = runCli(['quantize', input, '-o', out, '--scheme', 'int8', '--no-verify']);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toContain('not verified in ONNX Runtime: skipped (--no-verify)');
    expect(existsSync(out)).toBe(true);
  });

  it('convert of a model with an op above its opset, to external data: exit 2, model and data file deleted', () => {
    const input = model('dql9.onnx', { '': 9 }, [
      { opType: 'DynamicQuantizeLinear', inputs: ['h'], outputs: ['y', 's', 'z'] },
    ]);
    const out = join(dir, 'dql9-ext.onnx');
    const r = runCli(['convert', input, out, '--external-data', '--threshold', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /cannot load the model written by convert: .*No Op registered for DynamicQuantizeLinear with domain_version of 9.*and its data file were deleted/,
    );
    expect(readdirSync(dir).filter((f) => f.startsWith('dql9-ext'))).toEqual([]);
  });
});

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeTensorProto, encodeModel } from '../src/io/onnx/proto.js';
import { tensorFromProto } from '../src/io/onnx/tensor.js';
import { makeModel } from '../src/io/onnx/build.js';
import { REPO, SHARED, runCli } from './helpers/cli.js';

const CASE = join(SHARED, 'onnx-node-tests', 'test_dequantizelinear');

function expectOneLineUserError(r: { code: number; stderr: string }, code: RegExp) {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(code);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

/** `quantkit run` on the conformance case with its three test inputs, outputs to `out`. */
function runCaseArgs(out: string): string[] {
  const input = (i: number) => ['--input', join(CASE, 'test_data_set_0', `input_${i}.pb`)];
  return ['run', join(CASE, 'model.onnx'), ...input(0), ...input(1), ...input(2), '--out', out];
}

describe('quantkit CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qk-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a conformance model and writes output_0.pb equal to the expected bytes', () => {
    const out = join(dir, 'run-out');
    const r = runCli(runCaseArgs(out));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^output 0 /);
    const got = tensorFromProto(decodeTensorProto(readFileSync(join(out, 'output_0.pb'))));
    const want = tensorFromProto(decodeTensorProto(readFileSync(join(CASE, 'test_data_set_0', 'output_0.pb'))));
    expect(got.dtype).toBe(want.dtype);
    expect(got.dims).toEqual(want.dims);
    expect([...(got.data as Float32Array)]).toEqual([...(want.data as Float32Array)]);
  });

  it('refuses to replace an existing output without --force', () => {
    const out = join(dir, 'run-out');
    const args = runCaseArgs(out);
    expectOneLineUserError(runCli(args), /QK_OUTPUT_EXISTS/);
    expect(runCli([...args, '--force']).code).toBe(0);
  });

  it('a truncated .pb input is a one-line error with exit 1', () => {
    const bytes = readFileSync(join(CASE, 'test_data_set_0', 'input_0.pb'));
    const bad = join(dir, 'truncated.pb');
    writeFileSync(bad, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectOneLineUserError(
      runCli(['run', join(CASE, 'model.onnx'), '--input', bad]),
      /QK_ONNX_PARSE|QK_TENSOR_DATA_LENGTH/,
    );
  });

  it('a truncated model is a one-line error with exit 1', () => {
    const bytes = readFileSync(join(CASE, 'model.onnx'));
    const bad = join(dir, 'truncated.onnx');
    writeFileSync(bad, bytes.subarray(0, bytes.length - 7));
    expectOneLineUserError(
      runCli(['run', bad, '--input', join(CASE, 'test_data_set_0', 'input_0.pb')]),
      /QK_ONNX_PARSE/,
    );
  });

  it('an unsupported op names the op and the node', () => {
    const model = makeModel({
      nodes: [{ opType: 'Softsign', inputs: ['x'], outputs: ['y'], name: 'the_softsign' }],
      // Rank left open: run checks inputs against declared shapes, and any float tensor will do here.
      inputs: [{ name: 'x', dtype: 'float32' }],
      outputs: [{ name: 'y', dtype: 'float32' }],
    });
    const path = join(dir, 'softsign.onnx');
    writeFileSync(path, encodeModel(model));
    const x = join(CASE, 'test_data_set_0', 'input_1.pb'); // any float tensor will do
    const r = runCli(['run', path, '--input', x]);
    expectOneLineUserError(r, /QK_UNSUPPORTED_OP.*Softsign.*the_softsign|QK_UNSUPPORTED_OP.*the_softsign.*Softsign/);
  });

  it('a wrong flag is a one-line error with exit 1', () => {
    const r = runCli(['run', join(CASE, 'model.onnx'), '--no-such-flag']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown option/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a flag that the chosen scheme would ignore is refused, naming the flag', () => {
    const out = join(dir, 'never-written.onnx');
    expectOneLineUserError(
      runCli(['quantize', join(REPO, 'models/cnn.onnx'), '-o', out, '--scheme', 'int8-dynamic', '--block-size', '64']),
      /QK_OPTION_NOT_FOR_SCHEME.*--block-size/,
    );
    expectOneLineUserError(
      runCli(['quantize', join(REPO, 'models/cnn.onnx'), '-o', out, '--scheme', 'q4', '--method', 'entropy']),
      /QK_OPTION_NOT_FOR_SCHEME.*--method/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('a missing file is a one-line error with exit 1', () => {
    expectOneLineUserError(runCli(['inspect', join(REPO, 'no-such-model.onnx')]), /QK_FILE_UNREADABLE/);
  });
});

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCommand } from '../src/cli/commands/run.js';
import { decodeModel, decodeTensorProto } from '../src/io/onnx/proto.js';
import { tensorFromProto } from '../src/io/onnx/tensor.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { SHARED } from './helpers/cli.js';

// The ONNX backend node tests (model.onnx + test_data_set_0/{input,output}_*.pb) beside the repo,
// each run the way a user runs it: `quantkit run model.onnx --input input_0.pb ... --out dir`, then
// the written output_<i>.pb files compared with the expected ones.
const ROOT = join(SHARED, 'onnx-node-tests');
const CASES = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function loadTensors(dir: string, prefix: 'input' | 'output'): Tensor[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${prefix}_`) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length + 1, -3)) - Number(b.slice(prefix.length + 1, -3)))
    .map((f) => tensorFromProto(decodeTensorProto(readFileSync(join(dir, f)), f), f));
}

/**
 * Bit-identical comparison of storage. float32/float64: any NaN matches any NaN, everything else
 * must be the same value including the sign of zero (Object.is). All other types (fp16/bf16/fp8/
 * fp4 bit patterns, integers) must match slot for slot.
 */
function mismatches(actual: Tensor, expected: Tensor): string[] {
  const out: string[] = [];
  const a = actual.data as ArrayLike<unknown>;
  const e = expected.data as ArrayLike<unknown>;
  const nanAware = expected.dtype === 'float32' || expected.dtype === 'float64';
  for (let i = 0; i < e.length; i++) {
    const x = a[i];
    const y = e[i];
    const same = nanAware && Number.isNaN(x) && Number.isNaN(y) ? true : Object.is(x, y);
    if (!same) out.push(`[${i}] got ${String(x)} want ${String(y)}`);
  }
  return out;
}

describe('ONNX node conformance: `quantkit run` writes outputs bit-identical to output_*.pb', () => {
  const outRoot = mkdtempSync(join(tmpdir(), 'qk-conformance-'));
  // runCommand summarises each output on stdout; keep the test log readable.
  beforeAll(() => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterAll(() => {
    vi.restoreAllMocks();
    rmSync(outRoot, { recursive: true, force: true });
  });

  it('finds all 102 conformance cases', () => {
    expect(CASES.length).toBe(102);
  });
  for (const name of CASES) {
    it(name, async () => {
      const dir = join(ROOT, name);
      const model = decodeModel(readFileSync(join(dir, 'model.onnx')), `${name}/model.onnx`);
      const graph = model.graph!;
      const initializers = new Set(graph.initializer.map((t) => t.name));
      const inputNames = graph.input.map((v) => v.name).filter((n) => !initializers.has(n));
      const data = join(dir, 'test_data_set_0');
      const inputFiles = readdirSync(data)
        .filter((f) => f.startsWith('input_'))
        .sort((a, b) => Number(a.slice(6, -3)) - Number(b.slice(6, -3)));
      expect(inputFiles.length).toBe(inputNames.length);
      const out = join(outRoot, name);
      await runCommand(join(dir, 'model.onnx'), { input: inputFiles.map((f) => join(data, f)), out });
      const expected = loadTensors(data, 'output');
      const written = loadTensors(out, 'output');
      expect(expected.length).toBe(graph.output.length);
      expect(written.length).toBe(graph.output.length);
      graph.output.forEach((out, k) => {
        const got = written[k];
        const want = expected[k] as Tensor;
        expect(got, `output '${out.name}'`).toBeDefined();
        expect({ dtype: got!.dtype, dims: got!.dims }).toEqual({ dtype: want.dtype, dims: [...want.dims] });
        expect(mismatches(got!, want), `output '${out.name}' (${want.dtype})`).toEqual([]);
      });
    });
  }
});

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeModel, decodeTensorProto } from '../io/onnx/proto.js';
import { tensorFromProto } from '../io/onnx/tensor.js';
import type { Tensor } from '../tensor/tensor.js';
import { runModel } from './run.js';

// The ONNX backend node tests (model.onnx + test_data_set_0/{input,output}_*.pb) beside the repo.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'onnx-node-tests');
const CASES = readdirSync(ROOT, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

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

describe('ONNX node conformance: runModel output is bit-identical to output_*.pb', () => {
  it('finds the conformance cases', () => {
    expect(CASES.length).toBeGreaterThan(0);
  });
  for (const name of CASES) {
    it(name, () => {
      const dir = join(ROOT, name);
      const model = decodeModel(readFileSync(join(dir, 'model.onnx')), `${name}/model.onnx`);
      const graph = model.graph!;
      const initializers = new Set(graph.initializer.map((t) => t.name));
      const inputNames = graph.input.map((v) => v.name).filter((n) => !initializers.has(n));
      const data = join(dir, 'test_data_set_0');
      const inputs = loadTensors(data, 'input');
      const expected = loadTensors(data, 'output');
      expect(inputs.length).toBe(inputNames.length);
      const results = runModel(model, new Map(inputNames.map((n, i) => [n, inputs[i] as Tensor])));
      expect(expected.length).toBe(graph.output.length);
      graph.output.forEach((out, k) => {
        const got = results.get(out.name);
        const want = expected[k] as Tensor;
        expect(got, `output '${out.name}'`).toBeDefined();
        expect({ dtype: got!.dtype, dims: got!.dims }).toEqual({ dtype: want.dtype, dims: [...want.dims] });
        expect(mismatches(got!, want), `output '${out.name}' (${want.dtype})`).toEqual([]);
      });
    });
  }
});

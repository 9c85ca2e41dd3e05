import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { lmPerplexity, type PerplexityResult } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';
import { quantizeDynamic, type DynamicOptions } from '../src/passes/activation/dynamic.js';

const bytes = readFileSync('models/lm.onnx');
const evalWindows = readNpy(readFileSync('models/lm-eval.npy'));

describe('char LM int8-dynamic (run in onnxruntime-node)', () => {
  let fp32: PerplexityResult;
  beforeAll(async () => {
    fp32 = await lmPerplexity(bytes, evalWindows);
  });

  const forms: [string, DynamicOptions, string][] = [
    ['DynamicQuantizeLinear + MatMulInteger (default)', {}, 'MatMulInteger'],
    ['com.microsoft DynamicQuantizeMatMul', { form: 'contrib' }, 'DynamicQuantizeMatMul'],
    ['per-token s8', { perToken: true }, 'MatMulInteger'],
  ];
  for (const [label, opts, op] of forms) {
    it(`${label}: perplexity within +1 % of fp32`, async () => {
      const model = modelFromProto(decodeModel(bytes));
      const report = quantizeDynamic(model, opts);
      // Every weight MatMul (q, k, v, o, fc1, fc2 per block, head) is rewritten; none is left.
      expect(report.quantizedNodes.length).toBe(13);
      expect(model.graph.nodes.filter((n) => n.opType === op).length).toBe(13);
      const remaining = model.graph.nodes.filter(
        (n) => n.opType === 'MatMul' && model.graph.initializers.has(n.inputs[1] as string),
      );
      expect(remaining).toEqual([]);
      const q = await lmPerplexity(encodeModel(modelToProto(model)), evalWindows);
      const rel = q.perplexity / fp32.perplexity - 1;
      console.log(
        `lm int8-dynamic ${label}: perplexity ${q.perplexity.toFixed(4)} vs fp32 ${fp32.perplexity.toFixed(4)} (${(rel * 100).toFixed(2)} %)`,
      );
      expect(rel).toBeLessThan(0.01);
    });
  }
});

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCalibMethod } from '../src/calib/method.js';
import { quantizeStatic } from '../src/flows/calibrate-node.js';
import { lmPerplexity, type PerplexityResult } from '../src/flows/evaluate-node.js';
import { modelFromProto } from '../src/graph/from-onnx.js';
import { modelToProto } from '../src/graph/to-onnx.js';
import { consumers, producers } from '../src/graph/topology.js';
import { readNpy } from '../src/io/npy/npy.js';
import { decodeModel, encodeModel } from '../src/io/onnx/proto.js';

const bytes = readFileSync('models/lm.onnx');
const evalWindows = readNpy(readFileSync('models/lm-eval.npy'));
const calib = readNpy(readFileSync('models/lm-calib.npy'));

async function staticPerplexity(method: string, smoothQuant: number | undefined) {
  const model = modelFromProto(decodeModel(bytes));
  const r = await quantizeStatic(model, new Map([['input_ids', calib]]), {
    method: parseCalibMethod(method),
    batchSize: 8,
    smoothQuant,
  });
  return {
    model,
    report: r.report,
    ppl: (await lmPerplexity(encodeModel(modelToProto(model)), evalWindows)).perplexity,
  };
}

describe('char LM int8-static (QDQ, run in onnxruntime-node)', () => {
  let fp32: PerplexityResult;
  beforeAll(async () => {
    fp32 = await lmPerplexity(bytes, evalWindows);
  });

  it('minmax + SmoothQuant 0.5: perplexity within +5 %, and better than without SmoothQuant', async () => {
    const plain = await staticPerplexity('minmax', undefined);
    const smooth = await staticPerplexity('minmax', 0.5);
    const pct = (p: number) => `${((p / fp32.perplexity - 1) * 100).toFixed(2)} %`;
    console.log(
      `lm int8-static minmax: fp32 ${fp32.perplexity.toFixed(4)}, without SmoothQuant ${plain.ppl.toFixed(4)} (${pct(plain.ppl)}), with SmoothQuant 0.5 ${smooth.ppl.toFixed(4)} (${pct(smooth.ppl)})`,
    );
    expect(smooth.ppl / fp32.perplexity - 1).toBeLessThan(0.05);
    expect(smooth.ppl).toBeLessThan(plain.ppl);

    // The causal mask never shares a range with the scores: the mask Add and the Softmax input
    // stay float, and the Softmax output (probabilities) is quantized over exactly [0, 1].
    const g = smooth.model.graph;
    const prod = producers(g);
    const cons = consumers(g);
    for (const sm of g.nodes.filter((n) => n.opType === 'Softmax')) {
      expect(prod.get(sm.inputs[0] as string)?.opType).toBe('Add');
      const q = (cons.get(sm.outputs[0] as string) ?? []).find((n) => n.opType === 'QuantizeLinear');
      expect(q).toBeDefined();
      const scale = (g.initializers.get(q?.inputs[1] as string)?.load().data as Float32Array)[0];
      expect(scale).toBeCloseTo(1 / 255, 9);
    }
    const softmaxInputs = new Set(g.nodes.filter((n) => n.opType === 'Softmax').map((n) => n.inputs[0] as string));
    expect(g.nodes.filter((n) => n.opType === 'QuantizeLinear' && softmaxInputs.has(n.inputs[0] as string))).toEqual(
      [],
    );
    expect(smooth.report.smoothQuant?.groups.some((gr) => gr.foldedInto.startsWith('LayerNormalization'))).toBe(true);
  });

  it('entropy (TensorRT) keeps perplexity within +5 %', async () => {
    const r = await staticPerplexity('entropy', 0.5);
    console.log(
      `lm int8-static entropy + SmoothQuant: ${r.ppl.toFixed(4)} (${((r.ppl / fp32.perplexity - 1) * 100).toFixed(2)} %)`,
    );
    expect(r.ppl / fp32.perplexity - 1).toBeLessThan(0.05);
  });
});

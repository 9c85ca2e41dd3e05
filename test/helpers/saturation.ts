import * as ort from 'onnxruntime-node';
import type { Model } from '../../src/graph/model.js';
import { modelToProto } from '../../src/graph/to-onnx.js';
import { producers } from '../../src/graph/topology.js';
import { intAttr } from '../../src/passes/activation/graph-util.js';
import { pairSaturationError } from '../../src/interp/emulate.js';
import { encodeModel } from '../../src/io/onnx/proto.js';
import type { DType } from '../../src/tensor/dtype.js';

/**
 * The u8×s8 integer sites of a quantized model as ONNX Runtime runs them: MatMulInteger (int8-
 * dynamic) and MatMul/Gemm between DequantizeLinear(QuantizeLinear(x)) and DequantizeLinear(s8
 * weight) (int8-static, which ORT fuses into QLinearMatMul / QGemm). For each, the activation codes
 * the kernel reads and the weight codes as [K, N] or, for Gemm transB, [N, K].
 */
interface Site {
  node: string;
  codes: string;
  codesType: DType;
  weight: Int8Array;
  K: number;
  N: number;
  transB: boolean;
}

function integerSites(model: Model): Site[] {
  const g = model.graph;
  const prod = producers(g);
  const sites: Site[] = [];
  const weightOf = (name: string | undefined) => {
    const init = g.initializers.get(name ?? '');
    return init?.dtype === 'int8' && init.dims.length === 2
      ? { data: init.load().data as Int8Array, dims: init.dims as [number, number] }
      : undefined;
  };
  for (const n of g.nodes) {
    if (n.opType === 'MatMulInteger') {
      const w = weightOf(n.inputs[1]);
      // Per-token codes are s8 (a Cast): s8 × s8 MatMulInteger does not saturate (emulate.ts).
      const codesType: DType = prod.get(n.inputs[0] ?? '')?.opType === 'Cast' ? 'int8' : 'uint8';
      if (w && codesType === 'uint8')
        sites.push({
          node: n.name,
          codes: n.inputs[0] as string,
          codesType,
          weight: w.data,
          K: w.dims[0],
          N: w.dims[1],
          transB: false,
        });
      continue;
    }
    if (n.opType !== 'MatMul' && n.opType !== 'Gemm') continue;
    const dqx = prod.get(n.inputs[0] ?? '');
    const dqw = prod.get(n.inputs[1] ?? '');
    if (dqx?.opType !== 'DequantizeLinear' || dqw?.opType !== 'DequantizeLinear') continue;
    const q = prod.get(dqx.inputs[0] ?? '');
    const w = weightOf(dqw.inputs[0]);
    if (q?.opType !== 'QuantizeLinear' || !w) continue;
    const zp = g.initializers.get(q.inputs[2] ?? '');
    const transB = n.opType === 'Gemm' && intAttr(n, 'transB', 0) === 1;
    sites.push({
      node: n.name,
      codes: dqx.inputs[0] as string,
      codesType: zp?.dtype === 'int8' ? 'int8' : 'uint8',
      weight: w.data,
      K: transB ? w.dims[1] : w.dims[0],
      N: transB ? w.dims[0] : w.dims[1],
      transB,
    });
  }
  return sites;
}

/**
 * Runs `model` in ONNX Runtime on `feeds` and counts, over every integer site and every output
 * element, the dot products that the AVX2 u8×s8 kernel would saturate (src/interp/emulate.ts) on
 * the activation codes ORT actually produced. 0 means the emulated model's outputs equal the exact
 * ones: every integer op computes the same int32 values. Only weight pairs that could overflow for
 * some u8 (same sign, |a| + |b| > 128) are evaluated, which keeps this fast.
 */
export async function saturatedDots(
  model: Model,
  feeds: Record<string, ort.Tensor>,
): Promise<{ sites: number; saturated: number; dots: number }> {
  const sites = integerSites(model);
  const outputs = [
    ...model.graph.outputs,
    ...sites.map((s) => ({ name: s.codes, dtype: s.codesType, dims: undefined })),
  ];
  const seen = new Set<string>();
  const bytes = encodeModel(
    modelToProto({
      ...model,
      graph: { ...model.graph, outputs: outputs.filter((o) => !seen.has(o.name) && seen.add(o.name)) },
    }),
  );
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
  const out = await session.run(feeds);
  let saturated = 0;
  let dots = 0;
  for (const s of sites) {
    const t = out[s.codes];
    if (!t) throw new Error(`no activation codes for ${s.node}`);
    const raw = t.data as Uint8Array | Int8Array;
    const a = Float64Array.from(raw, (v) => (s.codesType === 'int8' ? v + 128 : v));
    const b = Float64Array.from(s.weight);
    const rows = a.length / s.K;
    dots += rows * s.N;
    for (let n = 0; n < s.N; n++) {
      // Only the pairs of this column that some u8 could push past int16.
      const risky: number[] = [];
      for (let k = 0; k < s.K; k += 2) {
        const w0 = b[s.transB ? n * s.K + k : k * s.N + n] as number;
        const w1 = k + 1 < s.K ? (b[s.transB ? n * s.K + k + 1 : (k + 1) * s.N + n] as number) : 0;
        if (w0 * w1 >= 0 && 255 * (Math.abs(w0) + Math.abs(w1)) > 32767) risky.push(k);
      }
      if (risky.length === 0) continue;
      for (let r = 0; r < rows; r++) {
        for (const k of risky) {
          const len = Math.min(2, s.K - k);
          const err = s.transB
            ? pairSaturationError(a, r * s.K + k, 1, b, n * s.K + k, 1, len)
            : pairSaturationError(a, r * s.K + k, 1, b, k * s.N + n, s.N, len);
          if (err !== 0) {
            saturated++;
            break;
          }
        }
      }
    }
  }
  return { sites: sites.length, saturated, dots };
}

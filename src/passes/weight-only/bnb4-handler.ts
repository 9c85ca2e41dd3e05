import { QuantkitError } from '../../errors.js';
import { quantizeBnb4Fast } from '../../kernels/bnb4-search.js';
import { BNB4_QUANT_TYPE, dequantizeBnb4, type Bnb4Options, type Bnb4Type } from '../../quant/bnb4-quant.js';
import { sqnrDb } from '../../quant/metrics.js';
import { NonFiniteWeight } from '../../quant/non-finite-weight.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer } from './graph-edit.js';
import { linearShape, linearView, rejectLinear, replaceLinear, transposedWeight } from './linear-site.js';
import { bnb4Key, viewIdOf } from './result-key.js';
import type { HandlerContext, WeightHandler, WeightOnlyOptions, WeightSite } from './types.js';

/**
 * Whether the data-free default searches the per-block constant for `type` (else: absmax, as
 * bitsandbytes and --rtn). The search lowers every block's squared weight error, but that is not
 * what a model's output feels. Measured in ONNX Runtime on every LM the project has (README's
 * scheme table; scripts/measure/weight-only-quality.ts): fp4's search lowers perplexity on each,
 * while nf4's raises it on models/lm.onnx (+2.05 % vs +1.84 % of fp32 for absmax) and on a
 * held-out LM (+3.22 % vs +2.51 %); no variant tried — fewer or milder candidates, least squares
 * only, errors weighted by |w| or w² — stayed at or below absmax on all of them. NF4's levels are
 * quantiles of N(0, 1) normalised to the block's absmax, the scale they were built for. Under GPTQ
 * (gptq-handler.ts), which carries each block's error onto the weights not yet quantized, the
 * search helps nf4 too (lm.onnx +0.99 % vs +1.22 %, both variant LMs likewise), so it keeps it.
 */
export function dataFreeSearch(type: Bnb4Type): boolean {
  return type === 'fp4';
}

/** The quantizer's options for data-free nf4 / fp4 (here and for worker threads, jobs.ts). */
export function dataFreeBnb4Options(
  type: Bnb4Type,
  blockSize: number,
  options: Pick<WeightOnlyOptions, 'rtn' | 'doubleQuant'>,
): Bnb4Options {
  // Data-free nf4 stores the plain absmax (dataFreeSearch says why).
  return {
    type,
    blockSize,
    rtn: (options.rtn ?? false) || !dataFreeSearch(type),
    doubleQuant: options.doubleQuant ?? false,
  };
}

/** nf4 / fp4: com.microsoft MatMulBnb4 replacing the MatMul (or Gemm); see quant/bnb4-quant.ts. */
function apply(type: Bnb4Type) {
  return (weight: string, sites: readonly WeightSite[], ctx: HandlerContext) => {
    const o = dataFreeBnb4Options(type, ctx.blockSize, ctx.options);
    const absmax = o.rtn ?? false;
    const done = new Map<
      string,
      { inputs: string[]; sqnr: number; bytes: number; dqBytes: number | undefined; K: number; N: number }
    >();
    for (const site of sites) {
      const view = linearShape(site); // K, N and id only: a result computed ahead needs no load
      const viewId = viewIdOf(view.id);
      let q = done.get(viewId);
      if (!q) {
        let original: Float32Array | undefined;
        const wt = () => (original ??= transposedWeight(linearView(site)));
        // A result computed ahead (GPTQ with calibration data, gptq-handler.ts; worker threads,
        // jobs.ts) is taken as is.
        let w = ctx.options.precomputed?.bnb4?.get(bnb4Key(view.id, type, ctx.blockSize, ctx.options.rtn ?? false));
        if (!w) {
          try {
            w = quantizeBnb4Fast(wt(), o);
          } catch (e) {
            if (e instanceof NonFiniteWeight)
              throw new QuantkitError(
                'QK_NONFINITE_WEIGHTS',
                `weight '${weight}' has a non-finite value (${e.value})`,
                'fix the weights, or `exclude` this tensor',
              );
            throw e;
          }
        }
        const inputs = [
          addInitializer(ctx.graph, ctx.name(`${weight}_${type}`), makeTensor('uint8', [w.packed.length], w.packed)),
          addInitializer(ctx.graph, ctx.name(`${weight}_absmax`), makeTensor('float32', [w.absmax.length], w.absmax)),
        ];
        // The quantizer's own sums when it kept them (GPTQ's results: from a dequantized copy).
        const sqnr =
          w.noiseSq !== undefined && w.signalSq !== undefined
            ? w.noiseSq === 0
              ? Infinity
              : 10 * Math.log10(w.signalSq / w.noiseSq)
            : sqnrDb(wt(), dequantizeBnb4(w, type, ctx.blockSize));
        q = {
          inputs,
          sqnr,
          bytes: w.packed.length + 4 * w.absmax.length,
          dqBytes: w.doubleQuantBytes === undefined ? undefined : w.packed.length + w.doubleQuantBytes,
          K: view.K,
          N: view.N,
        };
        done.set(viewId, q);
      }
      replaceLinear(site, ctx, 'MatMulBnb4', q.inputs, {
        K: q.K,
        N: q.N,
        block_size: ctx.blockSize,
        quant_type: BNB4_QUANT_TYPE[type],
      });
    }
    const all = [...done.values()];
    const bytes = all.reduce((s, d) => s + d.bytes, 0);
    const notes: string[] = [];
    if (ctx.options.rtn) notes.push('absmax round-to-nearest (`rtn`)');
    else if (absmax && !ctx.options.precomputed?.gptq?.has(weight)) notes.push('absmax per block (bitsandbytes)');
    if (ctx.options.doubleQuant) {
      const dq = all.reduce((s, d) => s + (d.dqBytes ?? d.bytes), 0);
      notes.push(
        `double-quant: stored as fp32 absmax (MatMulBnb4 reads fp32 only); ${bytes - dq} bytes smaller in a format carrying 8-bit constants`,
      );
    }
    return {
      scheme: type,
      form: `MatMulBnb4(${type}, block=${ctx.blockSize})`,
      sqnrDb: Math.min(...all.map((d) => d.sqnr)),
      note: notes.join('; '),
      addedBytes: bytes,
    };
  };
}

export function bnb4Handler(type: Bnb4Type): WeightHandler {
  return {
    reject: (site, ctx) => rejectLinear(site, ctx.graph),
    prepare: (ctx) => {
      if (!ctx.model.opsets.has('com.microsoft')) ctx.model.opsets.set('com.microsoft', 1);
      return undefined;
    },
    apply: apply(type),
  };
}

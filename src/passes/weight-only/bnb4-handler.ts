import { QuantkitError } from '../../errors.js';
import { sqnrDb } from '../../quant/metrics.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer } from './graph-edit.js';
import { BNB4_QUANT_TYPE, dataFreeSearch, dequantizeBnb4, quantizeBnb4, type Bnb4Options, type Bnb4Type } from './bnb4-quant.js';
import { linearShape, linearView, rejectLinear, replaceLinear, transposedWeight } from './linear-site.js';
import { NonFiniteWeight } from './nbits-quant.js';
import type { HandlerContext, WeightHandler, WeightOnlyOptions, WeightSite } from './types.js';

/** Key of a bnb4 result computed ahead (GPTQ, gptq-handler.ts) for a view and options. */
export const bnb4Key = (viewKey: string, type: Bnb4Type, blockSize: number, rtn: boolean) => `${viewKey}|bnb4|${type}|${blockSize}|${rtn}`;

/** The quantizer's options for data-free nf4 / fp4 (here and for worker threads, jobs.ts). */
export function dataFreeBnb4Options(type: Bnb4Type, blockSize: number, options: Pick<WeightOnlyOptions, 'rtn' | 'doubleQuant'>): Bnb4Options {
  // Data-free nf4 stores the plain absmax (bnb4-quant.ts dataFreeSearch says why).
  return { type, blockSize, rtn: (options.rtn ?? false) || !dataFreeSearch(type), doubleQuant: options.doubleQuant ?? false };
}

/** nf4 / fp4: com.microsoft MatMulBnb4 replacing the MatMul (or Gemm); see bnb4-quant.ts. */
function apply(type: Bnb4Type) {
  return (weight: string, sites: readonly WeightSite[], ctx: HandlerContext) => {
    const o = dataFreeBnb4Options(type, ctx.blockSize, ctx.options);
    const absmax = o.rtn ?? false;
    const done = new Map<string, { inputs: string[]; sqnr: number; bytes: number; dqBytes: number | undefined; K: number; N: number }>();
    for (const site of sites) {
      const view = linearShape(site); // K, N and key only: a result computed ahead needs no load
      let q = done.get(view.key);
      if (!q) {
        let original: Float32Array | undefined;
        const wt = () => (original ??= transposedWeight(linearView(site)));
        // A result computed ahead (GPTQ with calibration data, gptq-handler.ts; worker threads,
        // jobs.ts) is taken as is.
        let w = ctx.options.precomputed?.bnb4?.get(bnb4Key(view.key, type, ctx.blockSize, ctx.options.rtn ?? false));
        if (!w) {
          try {
            w = quantizeBnb4(wt(), o);
          } catch (e) {
            if (e instanceof NonFiniteWeight) throw new QuantkitError('QK_NONFINITE_WEIGHTS', `weight '${weight}' has a non-finite value (${e.value})`, 'fix the weights, or --exclude this tensor');
            throw e;
          }
        }
        const inputs = [
          addInitializer(ctx.graph, ctx.name(`${weight}_${type}`), makeTensor('uint8', [w.packed.length], w.packed)),
          addInitializer(ctx.graph, ctx.name(`${weight}_absmax`), makeTensor('float32', [w.absmax.length], w.absmax)),
        ];
        // The quantizer's own sums when it kept them (GPTQ's results: from a dequantized copy).
        const sqnr = w.noiseSq !== undefined && w.signalSq !== undefined ? (w.noiseSq === 0 ? Infinity : 10 * Math.log10(w.signalSq / w.noiseSq)) : sqnrDb(wt(), dequantizeBnb4(w, type, ctx.blockSize));
        q = { inputs, sqnr, bytes: w.packed.length + 4 * w.absmax.length, dqBytes: w.doubleQuantBytes === undefined ? undefined : w.packed.length + w.doubleQuantBytes, K: view.K, N: view.N };
        done.set(view.key, q);
      }
      replaceLinear(site, ctx, 'MatMulBnb4', q.inputs, { K: q.K, N: q.N, block_size: ctx.blockSize, quant_type: BNB4_QUANT_TYPE[type] });
    }
    const all = [...done.values()];
    const bytes = all.reduce((s, d) => s + d.bytes, 0);
    const notes: string[] = [];
    if (ctx.options.rtn) notes.push('absmax round-to-nearest (--rtn)');
    else if (absmax && !ctx.options.precomputed?.gptq?.has(weight)) notes.push('absmax per block (bitsandbytes)');
    if (ctx.options.doubleQuant) {
      const dq = all.reduce((s, d) => s + (d.dqBytes ?? d.bytes), 0);
      notes.push(`double-quant: stored as fp32 absmax (MatMulBnb4 reads fp32 only); ${bytes - dq} bytes smaller in a format carrying 8-bit constants`);
    }
    return { scheme: type, form: `MatMulBnb4(${type}, block=${ctx.blockSize})`, sqnrDb: Math.min(...all.map((d) => d.sqnr)), note: notes.join('; '), addedBytes: bytes };
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

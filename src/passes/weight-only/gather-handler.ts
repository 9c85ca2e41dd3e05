import { siteWeightFloat32 } from './linear-site.js';
import { QuantkitError } from '../../errors.js';
import { makeTensor } from '../../tensor/tensor.js';
import { int8Handler, rejectStorage } from './dq-storage.js';
import { attrsFrom } from '../../graph/attributes.js';
import { addInitializer, intAttr } from './graph-edit.js';
import { quantizeNBitsMatrixAuto } from '../../kernels/nbits-dispatch.js';
import { nbitsSqnrDb, type NBitsOptions, type NBitsWeights } from '../../quant/nbits-quant.js';
import { NonFiniteWeight } from '../../quant/non-finite-weight.js';
import { ensureOpset } from './opset.js';
import { nbitsKey } from './result-key.js';
import type { HandlerContext, LayerReport, WeightHandler, WeightSite } from './types.js';

/*
 * Embedding tables: Gather(data = fp32 initializer [vocab, d], axis 0).
 *
 * q4 / q4-asym / q8-block → com.microsoft GatherBlockQuantized (ONNX Runtime
 * docs/ContribOperators.md; CPU kernel contrib_ops/cpu/quantization/gather_block_quantized.cc),
 * in its uint8 form: data uint8 [vocab, d·bits/8] with the codes of a row packed along d, first
 * code in the LOW nibble; attribute bits; gather_axis 0, quantize_axis = last (the only axis the
 * uint8 form allows); scales float32 [vocab, ceil(d / block_size)] (a partial last block is
 * allowed: its scale index is ⌊k / block_size⌋); zero_points uint8 [vocab, ceil(blocks·bits/8)]
 * packed the same way, absent → 2^(bits−1); out = (code − zp) · scale. block_size must be a
 * power of two ≥ 16, which BLOCK_SIZES already is. These are exactly MatMulNBits's conventions
 * for a weight stored [N, K] (a Gemm with transB = 1): each embedding row is one MatMulNBits
 * column, so the same per-block error-minimising scales (quant/nbits-quant.ts) are reused as they are,
 * and when d is a multiple of the block size the packed bytes coincide with MatMulNBits's B
 * [N, k_blocks, blob] (only the last dims differ), so a tied LM head and embedding can share them.
 *
 * nf4 / fp4 → ONNX Runtime has no codebook Gather, so the table is stored int8 per row with a
 * DequantizeLinear(axis 0) in front of the Gather, as the int8 scheme does.
 *
 * Tied weights (one initializer read by Gather and by a MatMul/Gemm head): the linear handler
 * rewrites the head, and the Gather gets int8 rows + DequantizeLinear (as under nf4/fp4), not a
 * 4-bit table. Sharing the head's bytes is possible — with d a multiple of the block size,
 * MatMulNBits's B [N, k_blocks, blob] of a Gemm(transB = 1) holds exactly the row-packed table,
 * and a Reshape to [vocab, d·bits/8] feeds GatherBlockQuantized (checked against ONNX Runtime) —
 * but on test/fixtures/variants/lm-gemm-tied.onnx (d 64) the 4-bit table, shared or not, took q4
 * perplexity from +2.9 % to +9.2 % of fp32; int8 rows cost +0.2 %. The head, a matmul over all d,
 * averages its weight errors; an embedding row goes into the residual stream as it is.
 */

/** The part of a scheme that rewrites Gather sites (one weight, all its Gather readers). */
interface GatherPart {
  reject(site: WeightSite, ctx: HandlerContext): string | undefined;
  apply(weight: string, sites: readonly WeightSite[], ctx: HandlerContext): ApplyResult;
}

type ApplyResult = ReturnType<WeightHandler['apply']>;

function rejectGatherTable(site: WeightSite): string | undefined {
  if (intAttr(site.node, 'axis', 0) !== 0) return 'Gather along an axis other than 0';
  if (site.weight.dims.length !== 2)
    return `embedding of rank ${site.weight.dims.length} (a 2-D [vocab, d] table is needed)`;
  return undefined;
}

/** Row-packed codes [vocab, d·bits/8] from the quantizer's block-padded layout [vocab, kBlocks, blob]. */
export function packRows(w: NBitsWeights, blockSize: number, bits: 4 | 8): Uint8Array {
  const { K: d, N: rows, kBlocks } = w;
  if (d % blockSize === 0) return w.packed; // no padding: the layouts coincide
  const rowBytes = (d * bits) / 8;
  const out = new Uint8Array(rows * rowBytes);
  const codes = w.codes;
  for (let n = 0; n < rows; n++) {
    const src = n * kBlocks * blockSize;
    const dst = n * rowBytes;
    if (bits === 8) {
      out.set(codes.subarray(src, src + d), dst);
      continue;
    }
    // kBlocks · blockSize ≥ d and blocks are contiguous, so row codes are codes[src .. src + d).
    for (let k = 0; k < d; k += 2)
      out[dst + (k >> 1)] = (codes[src + k] as number) | ((codes[src + k + 1] as number) << 4);
  }
  return out;
}

/** GatherBlockQuantized(uint8, bits) for q4 / q4-asym / q8-block. */
export function blockGatherPart(bits: 4 | 8, symmetric: boolean): GatherPart {
  return {
    reject: (site) => {
      const r = rejectGatherTable(site);
      if (r) return r;
      const d = site.weight.dims[1] as number;
      if (bits === 4 && d % 2 !== 0)
        return `embedding width ${d} is odd (GatherBlockQuantized's uint8 form packs two 4-bit codes per byte along it)`;
      return undefined;
    },
    apply: (weight, sites, ctx) => {
      const first = sites[0] as WeightSite;
      const [vocab, d] = first.weight.dims as [number, number];
      const bs = ctx.blockSize;
      const rowBytes = (d * bits) / 8;
      const o: NBitsOptions = { bits, blockSize: bs, symmetric, rtn: ctx.options.rtn ?? false };
      // The table [vocab, d] is MatMulNBits's [N, K] layout (Gemm transB = 1, alpha 1): the
      // same view, so a result computed ahead for such a head is the same computation — unless
      // GPTQ computed it (fitted to the head's inputs).
      const gptq = ctx.options.precomputed?.gptq?.has(weight) ?? false;
      const ahead = gptq
        ? undefined
        : ctx.options.precomputed?.nbits.get(nbitsKey({ weight, transposed: true, alpha: 1 }, o));
      let w: NBitsWeights;
      try {
        w = ahead ?? quantizeNBitsMatrixAuto(siteWeightFloat32(first), d, vocab, true, 1, o);
      } catch (e) {
        if (e instanceof NonFiniteWeight)
          throw new QuantkitError(
            'QK_NONFINITE_WEIGHTS',
            `embedding '${weight}' has a non-finite value (${e.value}) at row ${e.row}, column ${e.col}`,
            'fix the weights, or `exclude` this tensor',
          );
        throw e;
      }
      const data = addInitializer(
        ctx.graph,
        ctx.name(`${weight}_Q${bits}`),
        makeTensor('uint8', [vocab, rowBytes], packRows(w, bs, bits)),
      );
      const inputs = [
        data,
        addInitializer(ctx.graph, ctx.name(`${weight}_scales`), makeTensor('float32', [vocab, w.kBlocks], w.scales)),
      ];
      let bytes = vocab * rowBytes + 4 * w.scales.length;
      if (w.zeroPoints) {
        inputs.push(
          addInitializer(
            ctx.graph,
            ctx.name(`${weight}_zero_points`),
            makeTensor('uint8', [vocab, w.zeroPoints.length / vocab], w.zeroPoints),
          ),
        );
        bytes += w.zeroPoints.length;
      }
      const how = d % bs !== 0 ? `, last block of ${d % bs}` : '';
      for (const s of sites) {
        const n = s.node;
        n.opType = 'GatherBlockQuantized';
        n.domain = 'com.microsoft';
        n.inputs = [inputs[0] as string, n.inputs[1] as string, ...inputs.slice(1)];
        n.attributes = attrsFrom({ gather_axis: 0, quantize_axis: 1, block_size: bs, bits });
      }
      if (!ctx.model.opsets.has('com.microsoft')) ctx.model.opsets.set('com.microsoft', 1);
      return {
        scheme: ctx.options.scheme,
        form: `GatherBlockQuantized(bits=${bits}, block=${bs}${symmetric ? '' : ', zero points'}${how})`,
        sqnrDb: nbitsSqnrDb(w),
        note: ctx.options.rtn ? 'round-to-nearest (`rtn`)' : '',
        addedBytes: bytes,
      };
    },
  };
}

/** nf4 / fp4 tables: int8 rows + DequantizeLinear(axis 0), as the int8 scheme stores them. */
export function int8RowsGatherPart(why: string): GatherPart {
  const opsetReady = new WeakMap<HandlerContext, string | undefined>();
  return {
    reject: (site, ctx) => {
      const r = rejectGatherTable(site) ?? rejectStorage(site);
      if (r) return r;
      if (!opsetReady.has(ctx)) {
        const e = ensureOpset(ctx.model, 13);
        if (e.ok && e.raisedFrom !== undefined)
          ctx.notes.push(
            `default opset raised from ${e.raisedFrom} to 13 for per-axis DequantizeLinear of embeddings (no node in the graph changes meaning)`,
          );
        opsetReady.set(
          ctx,
          e.ok
            ? undefined
            : `per-axis DequantizeLinear needs opset 13, and raising opset ${ctx.model.opsets.get('') ?? 1} would change ${e.blockers.join(', ')}`,
        );
      }
      return opsetReady.get(ctx);
    },
    apply: (weight, sites, ctx) => {
      const r = int8Handler.apply(weight, sites, ctx);
      return { ...r, form: `${r.form} int8 rows (${why})` };
    },
  };
}

/** True when a MatMul/Gemm also reads the weight (a tied LM head). */
function isTied(site: WeightSite, ctx: HandlerContext): boolean {
  return ctx.graph.nodes.some(
    (n) => n !== site.node && (n.opType === 'MatMul' || n.opType === 'Gemm') && n.inputs.includes(site.weight.name),
  );
}

/**
 * A linear-layer handler (MatMul/Gemm) extended to Gather sites by `gather`, or by `tied` for a
 * Gather whose table a MatMul/Gemm also reads.
 */
export function withGatherPart(linear: WeightHandler, gather: GatherPart, tied: GatherPart = gather): WeightHandler {
  const partFor = (site: WeightSite, ctx: HandlerContext) => (isTied(site, ctx) ? tied : gather);
  const handler: WeightHandler = {
    reject: (site, ctx) =>
      site.node.opType === 'Gather' ? partFor(site, ctx).reject(site, ctx) : linear.reject(site, ctx),
    apply: (weight, sites, ctx) => {
      const gathers = sites.filter((s) => s.node.opType === 'Gather');
      const linears = sites.filter((s) => s.node.opType !== 'Gather');
      // Decided before the linear handler rewrites the head (it stops being a Gemm).
      const part = gathers.length > 0 ? partFor(gathers[0] as WeightSite, ctx) : gather;
      if (linears.length === 0) return part.apply(weight, gathers, ctx);
      const lr = linear.apply(weight, linears, ctx);
      if (gathers.length === 0) return lr;
      const gr = part.apply(weight, gathers, ctx);
      return {
        scheme: lr.scheme,
        form: `${lr.form} + ${gr.form}`,
        sqnrDb: minSqnr(lr.sqnrDb, gr.sqnrDb),
        note: [...new Set([lr.note, gr.note].filter(Boolean))].join('; '),
        addedBytes: lr.addedBytes + gr.addedBytes,
      };
    },
  };
  if (linear.prepare) handler.prepare = (ctx) => linear.prepare?.(ctx);
  return handler;
}

function minSqnr(a: number | null, b: number | null): LayerReport['sqnrDb'] {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

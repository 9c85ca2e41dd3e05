import { spqrQuantize, type SpqrWeights } from '../../quant/spqr.js';
import { onnxDataType } from '../../tensor/dtype.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer, node } from './graph-edit.js';
import { quantizingWeight } from './non-finite.js';
import { linearShape, linearView, replaceLinear, type LinearView } from './linear-site.js';
import { nbitsKey, viewIdOf } from './result-key.js';
import { nbitsOptionsFor, type WeightOnlyScheme } from './scheme.js';
import type { HandlerContext, WeightSite } from './types.js';

/*
 * q3-spqr (quant/spqr.ts) as stock ONNX Runtime runs it:
 *   scales  = DequantizeLinear(int8 x [N, kBlocks], step [⌈N/β2⌉, kBlocks], axis 0, block β2)
 *   Y_low   = MatMulNBits(X, 4-bit storage of the 3-bit codes, scales, 4-bit zero points)
 *   D       = ScatterND(zeros [u, N], (row of k among the u outlier inputs, n), fp16 → fp32 values)
 *   Y       = Y_low + Gather(X, the u outlier inputs, −1) · D
 * D's inputs are all initializers, so ONNX Runtime folds it into a constant when it loads the
 * model: the file keeps the sparse form, the run a small dense GEMM over the u inputs that hold an
 * outlier. (A ScatterElements(add) of the per-outlier products into Y ran 2.4× slower than the
 * whole rest of the 4-layer LM; padded per-output lists (ELL) slower still, the busiest output
 * holding 10–40× the mean.) The file holds x as int8, steps as float32 and indices as int32,
 * wider than the true 3-bit / fp16 / 16-bit CSR storage the report's `trueBytes` counts.
 */

export const DEFAULT_SPQR_OUTLIERS = 0.005;

type NBitsScheme = Extract<WeightOnlyScheme, { kind: 'nbits' }>;

/** alpha · W as [K, N] row-major. */
function weightKN(view: LinearView): Float32Array {
  const { K, N } = view;
  const out = new Float32Array(K * N);
  const col = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    view.column(n, col);
    for (let k = 0; k < K; k++) out[k * N + n] = col[k] as number;
  }
  return out;
}

/** The data-free form (identity Hessian): round-to-nearest with outliers by weight error. */
export function spqrDataFree(view: LinearView, blockSize: number, outliers: number, weight: string): SpqrWeights {
  return quantizingWeight(weight, () =>
    spqrQuantize(weightKN(view), view.K, view.N, undefined, { blockSize, outliers }),
  );
}

interface Written {
  readonly inputs: string[];
  /** The outlier inputs (u distinct k) and the dense [u, N] correction built from the sparse one. */
  readonly side: { k: string; dense: string } | undefined;
  readonly w: SpqrWeights;
  readonly fileBytes: number;
}

function writeWeights(w: SpqrWeights, ctx: HandlerContext, weight: string): Written {
  const { N, kBlocks, blockSize } = w;
  const g = ctx.graph;
  const b = addInitializer(g, ctx.name(`${weight}_Q3`), makeTensor('uint8', [N, kBlocks, blockSize / 2], w.packed));
  const x = addInitializer(g, ctx.name(`${weight}_scale_codes`), makeTensor('int8', [N, kBlocks], w.scaleCodes));
  const step = addInitializer(
    g,
    ctx.name(`${weight}_scale_steps`),
    makeTensor('float32', [Math.ceil(N / w.statGroup), kBlocks], w.scaleSteps),
  );
  const scales = ctx.name(`${weight}_scales`);
  ctx.prologue.push(
    node('DequantizeLinear', [x, step], [scales], ctx.name(`${weight}_scales_DequantizeLinear`), {
      axis: 0,
      block_size: w.statGroup,
    }),
  );
  const zp = addInitializer(
    g,
    ctx.name(`${weight}_zero_points`),
    makeTensor('uint8', [N, w.zeroPoints.length / N], w.zeroPoints),
  );
  let fileBytes = w.packed.length + w.scaleCodes.length + 4 * w.scaleSteps.length + w.zeroPoints.length;
  let side: Written['side'];
  const nnz = w.outlierN.length;
  if (nnz > 0) {
    const inputs = [...new Set(w.outlierK)].sort((p, q) => p - q);
    const row = new Map(inputs.map((k, i) => [k, i]));
    const at = new Int32Array(2 * nnz);
    for (let i = 0; i < nnz; i++) {
      at[2 * i] = row.get(w.outlierK[i] as number) as number;
      at[2 * i + 1] = w.outlierN[i] as number;
    }
    const k = addInitializer(
      g,
      ctx.name(`${weight}_outlier_inputs`),
      makeTensor('int32', [inputs.length], Int32Array.from(inputs)),
    );
    const pos32 = addInitializer(g, ctx.name(`${weight}_outlier_positions`), makeTensor('int32', [nnz, 2], at));
    const h = addInitializer(g, ctx.name(`${weight}_outlier_fp16`), makeTensor('float16', [nnz], w.outlierValue));
    const zero = addInitializer(g, ctx.name(`${weight}_outlier_zero`), makeTensor('float32', [1], new Float32Array(1)));
    const shape = addInitializer(
      g,
      ctx.name(`${weight}_outlier_shape`),
      makeTensor('int64', [2], BigInt64Array.from([BigInt(inputs.length), BigInt(N)])),
    );
    const v = (s: string) => ctx.name(`${weight}_outlier_${s}`);
    const [pos, values, zeros, dense] = [v('positions64'), v('values'), v('zeros'), v('dense')];
    ctx.prologue.push(
      node('Cast', [pos32], [pos], ctx.name(`${weight}_outlier_positions_Cast`), { to: onnxDataType('int64') }),
      node('Cast', [h], [values], ctx.name(`${weight}_outlier_Cast`), { to: onnxDataType('float32') }),
      node('Expand', [zero, shape], [zeros], ctx.name(`${weight}_outlier_Expand`)),
      node('ScatterND', [zeros, pos, values], [dense], ctx.name(`${weight}_outlier_ScatterND`)),
    );
    side = { k, dense };
    fileBytes += 4 * inputs.length + 10 * nnz + 4 + 16;
  }
  return { inputs: [b, scales, zp], side, w, fileBytes };
}

/** Y = Y_low + Gather(X, outlier inputs) · dense correction, after the replaced node. */
function addCorrection(site: WeightSite, written: Written, ctx: HandlerContext): void {
  const side = written.side;
  if (!side) return;
  const n = site.node;
  const x = n.inputs[0] as string;
  const y = n.outputs[0] as string;
  const low = ctx.name(`${y}_low_bit`);
  n.outputs = [low, ...n.outputs.slice(1)];
  const base = n.name || 'MatMulNBits';
  const xs = ctx.name(`${y}_outlier_x`);
  const part = ctx.name(`${y}_outlier_part`);
  const extra = [
    node('Gather', [x, side.k], [xs], ctx.name(`${base}_outlier_Gather`), { axis: -1 }),
    node('MatMul', [xs, side.dense], [part], ctx.name(`${base}_outlier_MatMul`)),
    node('Add', [low, part], [y], ctx.name(`${base}_outlier_Add`)),
  ];
  ctx.graph.nodes.splice(ctx.graph.nodes.indexOf(n) + 1, 0, ...extra);
}

export function spqrApply(scheme: NBitsScheme, weight: string, sites: readonly WeightSite[], ctx: HandlerContext) {
  const fraction = ctx.options.outliers ?? DEFAULT_SPQR_OUTLIERS;
  const done = new Map<string, Written>();
  for (const site of sites) {
    const shape = linearShape(site);
    const viewId = viewIdOf(shape.id);
    let q = done.get(viewId);
    if (!q) {
      const o = nbitsOptionsFor(scheme, ctx.blockSize, false);
      const w =
        ctx.options.precomputed?.spqr?.get(nbitsKey(shape.id, o)) ??
        spqrDataFree(linearView(site), ctx.blockSize, fraction, weight);
      q = writeWeights(w, ctx, weight);
      done.set(viewId, q);
    }
    replaceLinear(site, ctx, 'MatMulNBits', q.inputs, {
      K: q.w.K,
      N: q.w.N,
      bits: 4,
      block_size: ctx.blockSize,
      ...(ctx.options.accuracyLevel ? { accuracy_level: ctx.options.accuracyLevel } : {}),
    });
    addCorrection(site, q, ctx);
  }
  const all = [...done.values()];
  const sum = (part: (w: SpqrWeights) => number) => all.reduce((s, d) => s + part(d.w), 0);
  const params = sum((w) => w.K * w.N);
  const nnz = sum((w) => w.outlierN.length);
  const per = (bits: number) => (bits / params).toFixed(3);
  const signal = sum((w) => w.signalSq);
  const noise = sum((w) => w.noiseSq);
  return {
    scheme: ctx.options.scheme,
    form: `MatMulNBits(bits=4, 3-bit levels, block=${ctx.blockSize}, DequantizeLinear scales) + Gather · MatMul outliers`,
    sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(signal / noise),
    note: `SpQR: ${nnz} outlier(s) (${((100 * nnz) / params).toFixed(2)} %); true bits/weight: codes ${per(sum((w) => w.bits.codes))}, scales ${per(sum((w) => w.bits.scales))}, zeros ${per(sum((w) => w.bits.zeros))}, second level ${per(sum((w) => w.bits.secondLevel))}, outliers ${per(sum((w) => w.bits.outliers))}`,
    addedBytes: all.reduce((s, d) => s + d.fileBytes, 0),
    trueBytes: Math.ceil(sum((w) => w.bits.total) / 8),
  };
}

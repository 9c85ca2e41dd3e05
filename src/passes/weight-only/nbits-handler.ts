import { QuantkitError } from '../../errors.js';
import { floatAttr } from '../../graph/attributes.js';
import { quantizeNBitsMatrixAuto } from '../../kernels/nbits-dispatch.js';
import { sqnrDb } from '../../quant/metrics.js';
import { nbitsSqnrDb, type NBitsOptions, type NBitsWeights } from '../../quant/nbits-quant.js';
import { encodeFloat16 } from '../../formats/float16.js';
import { onnxDataType } from '../../tensor/dtype.js';
import { hqqQuantize, type HqqWeights } from '../../quant/hqq.js';
import { quantizeSuperBlocks, type SuperBlockWeights } from '../../quant/superblock.js';
import { makeTensor } from '../../tensor/tensor.js';
import { addInitializer, node, rewireInputs } from './graph-edit.js';
import { spqrApply } from './spqr-handler.js';
import {
  linearShape,
  linearView,
  rejectLinear,
  replaceLinear,
  transposedWeight,
  type LinearView,
} from './linear-site.js';
import { quantizingWeight } from './non-finite.js';
import { ensureOpset } from './opset.js';
import { nbitsKey, viewIdOf } from './result-key.js';
import { nbitsOptionsFor, type WeightOnlyScheme } from './scheme.js';
import type { HandlerContext, WeightHandler, WeightSite } from './types.js';

/**
 * q4 / q4-asym / q8-block. Native form: com.microsoft MatMulNBits replacing the MatMul (or Gemm).
 * QDQ form (--format qdq, 4-bit only): the weight stored int4 (symmetric) or uint4 + zero points
 * (asymmetric) with an opset-21 blocked DequantizeLinear (block_size along K) feeding the
 * original op — the file then needs no contrib op.
 */

/**
 * What accuracy_level 4 costs and buys, measured on models/lm.onnx with ONNX Runtime 1.30
 * (scripts/measure/model-latency.ts; README "Speed of the models we write"): ORT quantizes each
 * row of activations to int8 per block and multiplies in integers.
 */
const ACCURACY_LEVEL_NOTE =
  'MatMulNBits `accuracyLevel` > 0: ONNX Runtime may quantize the activations to int8 per block, approximate (on the shipped LM, q4 perplexity 3.5490 vs 3.5491 at level 0, q4-asym 3.5316 vs 3.5299; faster than level 0 at one token, slower at 64)';

type NBitsScheme = Extract<WeightOnlyScheme, { kind: 'nbits' }>;

/**
 * MatMulNBits accuracy_level (`accuracyLevel`): 4 lets ONNX Runtime quantize A to int8 per block
 * on the fly and multiply in integers (ZeroQuant-style token-wise activations, per-block weights);
 * absent (0), A stays fp32. ORT falls back to fp32 A where its int8 kernel does not apply (float
 * zero points written inline; 4-bit ones written apart, the default, take the int8 kernel).
 */
const accuracyAttr = (ctx: HandlerContext): { accuracy_level?: number } =>
  ctx.options.accuracyLevel ? { accuracy_level: ctx.options.accuracyLevel } : {};

function quantize(view: LinearView, o: NBitsOptions, weight: string): NBitsWeights {
  return quantizingWeight(weight, () =>
    quantizeNBitsMatrixAuto(view.data, view.K, view.N, view.transposed, view.alpha, o),
  );
}

/** HQQ: MatMulNBits with float zero points [N, kBlocks] in A's type (float32). */
function hqqInputs(site: WeightSite, scheme: NBitsScheme, ctx: HandlerContext, weight: string) {
  const view = linearView(site);
  const bits = scheme.bits;
  const w: HqqWeights | SuperBlockWeights = quantizingWeight(weight, () => {
    const codeBits = 'codeBits' in scheme ? scheme.codeBits : undefined;
    const ahead =
      'superBlock' in scheme && !ctx.options.hqq
        ? ctx.options.precomputed?.superBlock?.get(nbitsKey(view.id, nbitsOptionsFor(scheme, ctx.blockSize, false)))
        : undefined;
    return (
      ahead ??
      ('superBlock' in scheme && bits === 4
        ? quantizeSuperBlocks(view.K, view.N, (n, out) => view.column(n, out), {
            bits,
            codeBits,
            blockSize: ctx.blockSize,
            superBlock: scheme.superBlock ?? 256,
          })
        : hqqQuantize(view.K, view.N, (n, out) => view.column(n, out), { bits, codeBits, blockSize: ctx.blockSize }))
    );
  });
  const inputs = [
    addInitializer(
      ctx.graph,
      ctx.name(`${weight}_Q${bits}`),
      makeTensor('uint8', [view.N, w.kBlocks, (ctx.blockSize * bits) / 8], w.packed),
    ),
    addInitializer(ctx.graph, ctx.name(`${weight}_scales`), makeTensor('float32', [view.N, w.kBlocks], w.scales)),
  ];
  const split = splitsZeroPoints(bits, ctx);
  if (!split)
    inputs.push(
      addInitializer(ctx.graph, ctx.name(`${weight}_zeros`), makeTensor('float32', [view.N, w.kBlocks], w.zeros)),
    );
  const correction = split
    ? addInitializer(
        ctx.graph,
        ctx.name(`${weight}_zero_correction`),
        makeTensor('float32', [w.kBlocks, view.N], zeroPointCorrection(w.scales, w.zeros, view.N, w.kBlocks)),
      )
    : undefined;
  const sqnr = w.noiseSq === 0 ? Infinity : 10 * Math.log10(w.signalSq / w.noiseSq);
  return {
    inputs,
    correction,
    sqnr,
    bytes: w.packed.length + 8 * w.scales.length,
    trueBytes: 'trueBytes' in w ? w.trueBytes : undefined,
    K: view.K,
    N: view.N,
    steps: 'steps' in w ? w.steps : 0,
  };
}

/**
 * Float zero points written apart (`floatZeroPoints` 'split', the default for 4 bits): ONNX
 * Runtime 1.30's MatMulNBits with float zero points dequantizes on a slow path at one row of A
 * (scripts/measure/nbits-one-node.ts: ~11× its time without zero points at 512 × 2048, ~34× at
 * accuracy_level 4), while without zero points (the default 8) it takes its fast kernels. Exactly
 * in real arithmetic, s·(q − z) = s·(q − 8) + s·(8 − z), and the second term is constant within a
 * block, so
 *   Y = MatMulNBits(X, q, s) + (X · R) · C,   R[k, b] = [k in block b],  C[b, n] = s_b,n · (8 − z_b,n)
 * — the correction a MatMul of K/block columns. R is Gather(identity, block of k), folded by
 * ORT at load; a K that is not a multiple of the block needs no padding this way. 2-bit weights
 * keep the inline form: their default-zero-point kernel is the slower one at one row.
 */
function splitsZeroPoints(bits: number, ctx: HandlerContext): boolean {
  return bits === 4 && (ctx.options.floatZeroPoints ?? 'split') === 'split';
}

/** C [kBlocks, N] from scales and float zero points [N, kBlocks]: s · (8 − z), rounded to fp32 once. */
export function zeroPointCorrection(
  scales: Float32Array,
  zeros: Float32Array,
  N: number,
  kBlocks: number,
): Float32Array {
  const c = new Float32Array(kBlocks * N);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < kBlocks; b++)
      c[b * N + n] = (scales[n * kBlocks + b] as number) * (8 - (zeros[n * kBlocks + b] as number));
  return c;
}

/**
 * R [K, kBlocks] (1 where row k lies in block b), one per K and block size in a pass (keyed by
 * the pass's prologue, where its Gather goes: a later pass over the same graph makes its own).
 */
const blockSums = new WeakMap<HandlerContext['prologue'], Map<string, string>>();
function blockSumMatrix(K: number, ctx: HandlerContext): string {
  const bs = ctx.blockSize;
  const kBlocks = Math.ceil(K / bs);
  let made = blockSums.get(ctx.prologue);
  if (!made) blockSums.set(ctx.prologue, (made = new Map()));
  const key = `${K}/${bs}`;
  const have = made.get(key);
  if (have) return have;
  const eye = new Float32Array(kBlocks * kBlocks);
  for (let b = 0; b < kBlocks; b++) eye[b * kBlocks + b] = 1;
  const rows = addInitializer(
    ctx.graph,
    ctx.name(`block_identity_${kBlocks}`),
    makeTensor('float32', [kBlocks, kBlocks], eye),
  );
  const blockOf = addInitializer(
    ctx.graph,
    ctx.name(`block_of_row_${K}_${bs}`),
    makeTensor(
      'int32',
      [K],
      Int32Array.from({ length: K }, (_, k) => Math.floor(k / bs)),
    ),
  );
  const r = ctx.name(`block_sum_${K}_${bs}`);
  ctx.prologue.push(node('Gather', [rows, blockOf], [r], ctx.name(`block_sum_${K}_${bs}_Gather`), { axis: 0 }));
  made.set(key, r);
  return r;
}

/** Y += (X · R) · C after the (already replaced) node's first output. */
function addZeroPointCorrection(site: WeightSite, K: number, correction: string, ctx: HandlerContext): void {
  const n = site.node;
  const x = n.inputs[0] as string;
  const y = n.outputs[0] as string;
  const main = ctx.name(`${y}_zero_point_8`);
  n.outputs = [main, ...n.outputs.slice(1)];
  const sums = ctx.name(`${x}_block_sums`);
  const part = ctx.name(`${y}_zero_point_part`);
  const extra = [
    node('MatMul', [x, blockSumMatrix(K, ctx)], [sums], ctx.name(`${n.name}_block_sums_MatMul`)),
    node('MatMul', [sums, correction], [part], ctx.name(`${n.name}_zero_point_MatMul`)),
    node('Add', [main, part], [y], ctx.name(`${n.name}_zero_point_Add`)),
  ];
  ctx.graph.nodes.splice(ctx.graph.nodes.indexOf(n) + 1, 0, ...extra);
}

/**
 * SpQR-style outliers (`outliers`, a fraction of the weights): the input rows k of W with the
 * largest Σₙ w² — the rows that set their blocks' scales — are taken out of the low-bit weight
 * (set to 0 before quantizing, so the other rows of their blocks get finer scales) and kept in
 * fp16 beside it:
 *   Y = MatMulNBits(X, W_low) + Gather(X, rows, axis −1) · Cast(W[rows, :] fp16 → fp32)
 * — stock ONNX ops, the side product over |rows| = ⌈fraction · K⌉ inputs only. (Ranking rows by
 * their own quantization error picks the wrong ones: a wide row is coded well by the block scale it
 * sets, and its neighbours pay.) A row holds N weights, so the fraction of weights kept wide is
 * the fraction of rows. True bytes add 2 per kept weight and 8 per row index (int64).
 */
function outlierRows(view: LinearView, fraction: number): Int32Array {
  const { K, N } = view;
  const r = Math.min(K, Math.max(1, Math.ceil(fraction * K)));
  const wt = transposedWeight(view);
  const energy = new Float64Array(K);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) energy[k] = (energy[k] as number) + (wt[n * K + k] as number) ** 2;
  const order = Array.from({ length: K }, (_, k) => k).sort(
    (x, y) => (energy[y] as number) - (energy[x] as number) || x - y,
  );
  return Int32Array.from(order.slice(0, r)).sort();
}

interface OutlierSide {
  readonly indices: string;
  readonly weights: string;
  readonly rows: number;
  readonly bytes: number;
}

/** The low-bit weight without the outlier rows, and the side tensors (indices, fp16 rows → fp32). */
function splitOutliers(
  view: LinearView,
  fraction: number,
  o: NBitsOptions,
  ctx: HandlerContext,
  weight: string,
): { low: NBitsWeights; side: OutlierSide } {
  const { K, N } = view;
  const rows = outlierRows(view, fraction);
  const wt = transposedWeight(view);
  const half = new Uint16Array(rows.length * N);
  for (const [i, k] of rows.entries()) {
    for (let n = 0; n < N; n++) {
      half[i * N + n] = encodeFloat16(wt[n * K + k] as number);
      wt[n * K + k] = 0;
    }
  }
  const low = quantizeNBitsMatrixAuto(wt, K, N, true, 1, o);
  const indices = addInitializer(
    ctx.graph,
    ctx.name(`${weight}_outlier_rows`),
    makeTensor(
      'int64',
      [rows.length],
      BigInt64Array.from(rows, (k) => BigInt(k)),
    ),
  );
  const h = addInitializer(
    ctx.graph,
    ctx.name(`${weight}_outliers_fp16`),
    makeTensor('float16', [rows.length, N], half),
  );
  const f32 = ctx.name(`${weight}_outliers`);
  ctx.prologue.push(node('Cast', [h], [f32], ctx.name(`${weight}_outliers_Cast`), { to: onnxDataType('float32') }));
  return { low, side: { indices, weights: f32, rows: rows.length, bytes: 2 * half.length + 8 * rows.length } };
}

/** Y += Gather(X, rows) · W_rows after the (already replaced) node's first output. */
function addOutlierProduct(site: WeightSite, side: OutlierSide, ctx: HandlerContext): void {
  const n = site.node;
  const x = n.inputs[0] as string;
  const y = n.outputs[0] as string;
  const low = ctx.name(`${y}_low_bit`);
  n.outputs = [low, ...n.outputs.slice(1)];
  const xs = ctx.name(`${x}_outlier_inputs`);
  const ys = ctx.name(`${y}_outlier_part`);
  const extra = [
    node('Gather', [x, side.indices], [xs], ctx.name(`${n.name}_outlier_Gather`), { axis: -1 }),
    node('MatMul', [xs, side.weights], [ys], ctx.name(`${n.name}_outlier_MatMul`)),
    node('Add', [low, ys], [y], ctx.name(`${n.name}_outlier_Add`)),
  ];
  ctx.graph.nodes.splice(ctx.graph.nodes.indexOf(n) + 1, 0, ...extra);
}

function nativeApply(scheme: NBitsScheme) {
  const { bits, symmetric } = scheme;
  return (weight: string, sites: readonly WeightSite[], ctx: HandlerContext) => {
    if ('spqr' in scheme) return spqrApply(scheme, weight, sites, ctx);
    if (ctx.options.hqq || 'superBlock' in scheme) return hqqApply(scheme, weight, sites, ctx);
    const done = new Map<
      string,
      { inputs: string[]; sqnr: number; bytes: number; K: number; N: number; side: OutlierSide | undefined }
    >();
    const fraction = ctx.options.outliers ?? 0;
    for (const site of sites) {
      const view = linearShape(site); // K, N and id only: a result computed ahead needs no load
      const viewId = viewIdOf(view.id);
      let q = done.get(viewId);
      if (!q) {
        const o = nbitsOptionsFor(scheme, ctx.blockSize, ctx.options.rtn ?? false);
        const split = fraction > 0 ? splitOutliers(linearView(site), fraction, o, ctx, weight) : undefined;
        const w =
          split?.low ??
          ctx.options.precomputed?.nbits.get(nbitsKey(view.id, o)) ??
          quantize(linearView(site), o, weight);
        const bName = addInitializer(
          ctx.graph,
          ctx.name(`${weight}_Q${bits}`),
          makeTensor('uint8', [view.N, w.kBlocks, (ctx.blockSize * bits) / 8], w.packed),
        );
        const sName = addInitializer(
          ctx.graph,
          ctx.name(`${weight}_scales`),
          makeTensor('float32', [view.N, w.kBlocks], w.scales),
        );
        const inputs = [bName, sName];
        let bytes = w.packed.length + 4 * w.scales.length;
        if (w.zeroPoints) {
          inputs.push(
            addInitializer(
              ctx.graph,
              ctx.name(`${weight}_zero_points`),
              makeTensor('uint8', [view.N, w.zeroPoints.length / view.N], w.zeroPoints),
            ),
          );
          bytes += w.zeroPoints.length;
        }
        // SQNR from the sums the quantizer kept: no dequantized copy, no transposed original.
        q = {
          inputs,
          sqnr: nbitsSqnrDb(w),
          bytes: bytes + (split?.side.bytes ?? 0),
          K: view.K,
          N: view.N,
          side: split?.side,
        };
        done.set(viewId, q);
      }
      replaceLinear(site, ctx, 'MatMulNBits', q.inputs, {
        K: q.K,
        N: q.N,
        bits,
        block_size: ctx.blockSize,
        ...accuracyAttr(ctx),
      });
      if (q.side) addOutlierProduct(site, q.side, ctx);
    }
    const all = [...done.values()];
    const kept = all.reduce((s, d) => s + (d.side?.rows ?? 0), 0);
    return {
      scheme: ctx.options.scheme,
      form: `MatMulNBits(bits=${bits}${'codeBits' in scheme ? `, ${scheme.codeBits}-bit levels` : ''}, block=${ctx.blockSize}${symmetric ? '' : ', zero points'}${ctx.options.accuracyLevel ? `, accuracy_level ${ctx.options.accuracyLevel}` : ''})`,
      sqnrDb: Math.min(...all.map((d) => d.sqnr)),
      note: [
        ctx.options.rtn ? 'round-to-nearest (`rtn`)' : '',
        kept > 0 ? `${kept} input row(s) kept in fp16 beside it (\`outliers\`)` : '',
      ]
        .filter(Boolean)
        .join('; '),
      addedBytes: all.reduce((s, d) => s + d.bytes, 0),
    };
  };
}

function hqqApply(scheme: NBitsScheme, weight: string, sites: readonly WeightSite[], ctx: HandlerContext) {
  const done = new Map<string, ReturnType<typeof hqqInputs>>();
  for (const site of sites) {
    const viewId = viewIdOf(linearShape(site).id);
    let q = done.get(viewId);
    if (!q) {
      q = hqqInputs(site, scheme, ctx, weight);
      done.set(viewId, q);
    }
    replaceLinear(site, ctx, 'MatMulNBits', q.inputs, {
      K: q.K,
      N: q.N,
      bits: scheme.bits,
      block_size: ctx.blockSize,
      ...accuracyAttr(ctx),
    });
    if (q.correction) addZeroPointCorrection(site, q.K, q.correction, ctx);
  }
  const all = [...done.values()];
  const levels = 'codeBits' in scheme ? `, ${scheme.codeBits}-bit levels` : '';
  const sqnrDb = Math.min(...all.map((d) => d.sqnr));
  const addedBytes = all.reduce((s, d) => s + d.bytes, 0);
  const zeros = splitsZeroPoints(scheme.bits, ctx)
    ? 'float zero points as a per-block correction'
    : 'float zero points';
  const form = `MatMulNBits(bits=${scheme.bits}${levels}, block=${ctx.blockSize}, ${zeros})`;
  if ('superBlock' in scheme && !ctx.options.hqq) {
    const trueBytes = all.reduce((s, d) => s + (d.trueBytes ?? d.bytes), 0);
    return {
      scheme: ctx.options.scheme,
      form: `${form} k-quant`,
      sqnrDb,
      note: `6-bit scales and mins under fp16 per ${scheme.superBlock}: ${trueBytes} bytes packed, stored dequantized`,
      addedBytes,
      trueBytes,
    };
  }
  return {
    scheme: ctx.options.scheme,
    form: `${form} hqq`,
    sqnrDb,
    note: `HQQ zero points (\`hqq\`, ${Math.max(...all.map((d) => d.steps))} steps)`,
    addedBytes,
  };
}

/** QDQ form: one DequantizeLinear for the weight in its original layout, shared by all sites. */
function qdqApply(scheme: NBitsScheme) {
  const symmetric = scheme.symmetric;
  return (weight: string, sites: readonly WeightSite[], ctx: HandlerContext) => {
    const first = sites[0] as WeightSite;
    // The stored weight keeps B's layout; blocks run along its K axis (0 for [K, N], 1 for Gemm transB).
    const view = linearView(first);
    const transB = view.transposed;
    if (view.alpha !== 1)
      throw new QuantkitError(
        'QK_QDQ_GEMM_ALPHA',
        `Gemm '${first.node.name}' has alpha ≠ 1, which the QDQ form cannot fold`,
        'use the native form (drop `format` qdq)',
      );
    const o = nbitsOptionsFor(scheme, ctx.blockSize, ctx.options.rtn ?? false);
    const w = ctx.options.precomputed?.nbits.get(nbitsKey(view.id, o)) ?? quantize(view, o, weight);
    const { K, N, kBlocks } = w;
    const bs = ctx.blockSize;
    const dims = [...first.weight.dims];
    const codes = symmetric ? new Int8Array(K * N) : new Uint8Array(K * N);
    const back = new Float32Array(K * N);
    const orig = transposedWeight(view);
    const origB = new Float32Array(K * N);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        const p = n * kBlocks + Math.floor(k / bs);
        const q = (w.codes[p * bs + (k % bs)] as number) - (symmetric ? 8 : 0);
        const i = transB ? n * K + k : k * N + n;
        codes[i] = q;
        back[i] = Math.fround((q - (symmetric ? 0 : (w.zp[p] as number))) * (w.scales[p] as number));
        origB[i] = orig[n * K + k] as number;
      }
    }
    // Scale / zero-point tensors have B's shape with the K axis divided into blocks.
    const pDims = transB ? [N, kBlocks] : [kBlocks, N];
    const scale = new Float32Array(K === 0 ? 0 : kBlocks * N);
    const zp = new Uint8Array(scale.length);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < kBlocks; b++) {
        const i = transB ? n * kBlocks + b : b * N + n;
        scale[i] = w.scales[n * kBlocks + b] as number;
        zp[i] = w.zp[n * kBlocks + b] as number;
      }
    }
    const inputs = [
      addInitializer(
        ctx.graph,
        ctx.name(`${weight}_${symmetric ? 'int4' : 'uint4'}`),
        makeTensor(symmetric ? 'int4' : 'uint4', dims, codes),
      ),
      addInitializer(ctx.graph, ctx.name(`${weight}_scale`), makeTensor('float32', pDims, scale)),
    ];
    let bytes = Math.ceil(codes.length / 2) + 4 * scale.length;
    if (!symmetric) {
      inputs.push(addInitializer(ctx.graph, ctx.name(`${weight}_zero_point`), makeTensor('uint4', pDims, zp)));
      bytes += Math.ceil(zp.length / 2);
    }
    const out = ctx.name(`${weight}_dequantized`);
    ctx.prologue.push(
      node('DequantizeLinear', inputs, [out], ctx.name(`${weight}_DequantizeLinear`), {
        axis: transB ? 1 : 0,
        block_size: bs,
      }),
    );
    rewireInputs(
      sites.map((s) => s.node),
      weight,
      out,
    );
    return {
      scheme: ctx.options.scheme,
      form: `DequantizeLinear(${symmetric ? 'int4' : 'uint4'}, block=${bs})`,
      sqnrDb: sqnrDb(origB, back),
      note: ctx.options.rtn ? 'round-to-nearest (`rtn`)' : '',
      addedBytes: bytes,
    };
  };
}

export function nbitsHandler(scheme: NBitsScheme, format: 'native' | 'qdq'): WeightHandler {
  const bits = scheme.bits;
  if (format === 'qdq') {
    if (bits !== 4)
      throw new QuantkitError(
        'QK_QDQ_UNSUPPORTED',
        `\`format\` qdq is for 4-bit schemes, not ${bits}-bit`,
        'use `scheme` int8 for 8-bit DequantizeLinear weights',
      );
    return {
      reject: (site, ctx) => {
        const r = rejectLinear(site, ctx.graph);
        if (r) return r;
        if (site.node.opType === 'Gemm' && floatAttr(site.node, 'alpha', 1) !== 1)
          return 'Gemm with alpha ≠ 1 (QDQ form keeps the op)';
        return undefined;
      },
      prepare: (ctx) => {
        const r = ensureOpset(ctx.model, 21);
        if (!r.ok)
          return `blocked DequantizeLinear needs opset 21, and raising opset ${ctx.model.opsets.get('') ?? 1} would change ${r.blockers.join(', ')}`;
        if (r.raisedFrom !== undefined)
          ctx.notes.push(
            `default opset raised from ${r.raisedFrom} to 21 for blocked DequantizeLinear (no node in the graph changes meaning)`,
          );
        return undefined;
      },
      apply: qdqApply(scheme),
    };
  }
  return {
    reject: (site, ctx) => rejectLinear(site, ctx.graph),
    prepare: (ctx) => {
      if (!ctx.model.opsets.has('com.microsoft')) ctx.model.opsets.set('com.microsoft', 1);
      if ('spqr' in scheme) {
        // Blocked DequantizeLinear (the scales) needs opset 21; ScatterElements' reduction 16.
        const r = ensureOpset(ctx.model, 21);
        if (!r.ok)
          return `q3-spqr's blocked DequantizeLinear needs opset 21, and raising opset ${ctx.model.opsets.get('') ?? 1} would change ${r.blockers.join(', ')}`;
        if (r.raisedFrom !== undefined)
          ctx.notes.push(
            `default opset raised from ${r.raisedFrom} to 21 for blocked DequantizeLinear (q3-spqr scales)`,
          );
      }
      if ((ctx.options.accuracyLevel ?? 0) !== 0) ctx.notes.push(ACCURACY_LEVEL_NOTE);
      return undefined;
    },
    apply: nativeApply(scheme),
  };
}

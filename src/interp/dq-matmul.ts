import { AttributeReader } from '../graph/attributes.js';
import type { Graph, GraphNode } from '../graph/model.js';
import type { Tensor } from '../tensor/tensor.js';
import { elementCount, makeTensor } from '../tensor/tensor.js';
import { matmulNBits, matmulNBitsInt8, type NBitsMatrix } from './kernels.js';
import type { OpContext } from './op.js';
import { badShape } from './op.js';
import { encodeFloat, toFloat64 } from './values.js';

/**
 * DequantizeLinear(int4/uint4 weight blocked along K) → MatMul, the `--format qdq` form of q4:
 * ONNX Runtime turns it into MatMulNBits, and so does the interpreter — the weight goes to the
 * MatMulNBits kernel (kernels.ts) in that op's layout instead of being multiplied in float. At
 * accuracy level 0 the result is the same product (each weight fp32((code − zero point) · scale),
 * summed); ORT gives the MatMulNBits it makes accuracy_level 4 unless its session says otherwise
 * (session.qdq_matmulnbits_accuracy_level), and level 4 quantizes A to int8 per block.
 * A site: a MatMul whose B is the output of a DequantizeLinear of a 2-D 4-bit initializer with
 * axis 0 and block_size (one scale per block of K rows per column).
 */
export function dqMatMulSites(graph: Graph): Map<GraphNode, GraphNode> {
  const producer = new Map<string, GraphNode>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o !== '') producer.set(o, n);
  const sites = new Map<GraphNode, GraphNode>();
  for (const n of graph.nodes) {
    if (n.opType !== 'MatMul' || n.domain !== '') continue;
    const dq = producer.get(n.inputs[1] ?? '');
    if (!dq || dq.opType !== 'DequantizeLinear' || dq.domain !== '') continue;
    const w = graph.initializers.get(dq.inputs[0] ?? '');
    if (!w || (w.dtype !== 'int4' && w.dtype !== 'uint4') || w.dims.length !== 2) continue;
    const attrs = new AttributeReader(dq.attributes, dq.name);
    if (attrs.int('axis', 1) !== 0 || attrs.int('block_size', 0) < 16) continue;
    sites.set(n, dq);
  }
  return sites;
}

/**
 * Repacked weights by the identity of the codes' storage (with the scale and zero point they
 * were packed with): a weight is repacked once however often the model runs, and the kernel sees
 * the same arrays each time (the WebAssembly kernels cache their copy by that identity).
 */
const packedCache = new WeakMap<object, { scale: object; zeroPoint: object | undefined; w: NBitsMatrix }>();

/**
 * Y = A × dequantize(W) through MatMulNBits at `accuracyLevel`; A [..., K] fp32, W [K, N] 4-bit
 * codes. undefined for what the kernel does not take (A or the scale not fp32): the plain ops run
 * those.
 */
export function runDqMatMul(
  a: Tensor,
  w: Tensor,
  scale: Tensor,
  zeroPoint: Tensor | undefined,
  blockSize: number,
  ctx: OpContext,
  accuracyLevel: 0 | 4 = 0,
): Tensor | undefined {
  const [K, N] = w.dims as [number, number];
  if (a.dtype !== 'float32' || scale.dtype !== 'float32') return undefined;
  if (a.dims[a.dims.length - 1] !== K) throw badShape(ctx, `A [${a.dims.join(', ')}] must end in K = ${K}`);
  const kBlocks = Math.ceil(K / blockSize);
  if (scale.dims.length !== 2 || scale.dims[0] !== kBlocks || scale.dims[1] !== N)
    throw badShape(ctx, `blocked scale must be [${kBlocks}, ${N}], got [${scale.dims.join(', ')}]`);
  const cached = packedCache.get(w.data);
  const weights =
    cached && cached.scale === scale.data && cached.zeroPoint === zeroPoint?.data && cached.w.blockSize === blockSize
      ? cached.w
      : repack(w, scale, zeroPoint, blockSize);
  packedCache.set(w.data, { scale: scale.data, zeroPoint: zeroPoint?.data, w: weights });
  const product = accuracyLevel === 4 ? matmulNBitsInt8 : matmulNBits;
  const y = product(a.data as Float32Array, elementCount(a.dims) / K, weights, ctx.threads);
  return makeTensor('float32', [...a.dims.slice(0, -1), N], encodeFloat('float32', Float64Array.from(y)));
}

/** W [K, N] 4-bit codes with blocked scale/zero point [k_blocks, N] in MatMulNBits' layout. */
function repack(w: Tensor, scale: Tensor, zeroPoint: Tensor | undefined, blockSize: number): NBitsMatrix {
  const [K, N] = w.dims as [number, number];
  const kBlocks = Math.ceil(K / blockSize);
  const codes = toFloat64(w);
  const s = scale.data as Float32Array;
  const z = zeroPoint ? toFloat64(zeroPoint) : undefined;
  // Stored codes are unsigned: int4 q becomes q + 8 with zero point 8 + its own (0 when absent).
  const shift = w.dtype === 'int4' ? 8 : 0;
  const blob = blockSize / 2;
  const packed = new Uint8Array(N * kBlocks * blob);
  const scales = new Float32Array(N * kBlocks);
  const zps = new Uint8Array(N * Math.ceil(kBlocks / 2));
  const zpRow = Math.ceil(kBlocks / 2);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const p = n * kBlocks + b;
      scales[p] = s[b * N + n] as number;
      const zp = (z ? (z[b * N + n] as number) : 0) + shift;
      zps[n * zpRow + (b >> 1)] = (zps[n * zpRow + (b >> 1)] as number) | (zp << ((b & 1) * 4));
      for (let j = 0; j < blockSize && b * blockSize + j < K; j++) {
        const code = (codes[(b * blockSize + j) * N + n] as number) + shift;
        packed[p * blob + (j >> 1)] = (packed[p * blob + (j >> 1)] as number) | (code << ((j & 1) * 4));
      }
    }
  }
  return { K, N, bits: 4, blockSize, packed, scales, zeroPoints: zps };
}

import { AttributeReader } from '../graph/attributes.js';
import type { Graph, GraphNode } from '../graph/model.js';
import type { Tensor } from '../tensor/tensor.js';
import { elementCount, makeTensor } from '../tensor/tensor.js';
import { matmulNBits, matmulNBitsInt8, type NBitsMatrix } from './kernels.js';
import type { OpContext } from './op.js';
import { badShape } from './op.js';
import { encodeFloat, toFloat64 } from './values.js';

/**
 * DequantizeLinear(4- or 8-bit weight) → MatMul, the `--format qdq` form of q4 and the int8
 * weight-only form: ONNX Runtime turns it into MatMulNBits, and so does the interpreter — the
 * weight goes to the MatMulNBits kernel (kernels.ts) in that op's layout instead of being
 * multiplied in float. At accuracy level 0 the result is the same product (each weight
 * fp32((code − zero point) · scale), summed); ORT gives the MatMulNBits it makes accuracy_level 4
 * unless its session says otherwise (session.qdq_matmulnbits_accuracy_level), and level 4
 * quantizes A to int8 per block.
 *
 * A site, as ORT 1.30's selector (qdq_selectors.cc, ValidateDQForMatMulNBits) takes it: a MatMul
 * whose A is no DequantizeLinear's output and whose output feeds no QuantizeLinear, and whose B is the only use of a DequantizeLinear (not a graph output) of a 2-D int4/uint4/int8/uint8
 * initializer with float32 initializer scale (and zero point), either blocked (axis 0,
 * block_size a power of 2 ≥ 16, scale [⌈K/bs⌉, N]), per channel (no block_size, scale [N],
 * axis 1) or per tensor (scalar scale and zero point). The last two become blocks of 32, ORT's
 * session.qdq_matmulnbits_block_size default, each block repeating the channel's constants.
 */
export interface DqMatMulSite {
  readonly dq: GraphNode;
  /** MatMulNBits' block size: the DequantizeLinear's, or 32 for a per-channel or per-tensor weight. */
  readonly blockSize: number;
}

export function dqMatMulSites(graph: Graph): Map<GraphNode, DqMatMulSite> {
  const producer = new Map<string, GraphNode>();
  const uses = new Map<string, number>();
  for (const n of graph.nodes) {
    for (const o of n.outputs) if (o !== '') producer.set(o, n);
    for (const i of n.inputs) if (i !== '') uses.set(i, (uses.get(i) ?? 0) + 1);
  }
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const quantizers = new Set(graph.nodes.filter((n) => n.opType === 'QuantizeLinear').map((n) => n.inputs[0] ?? ''));
  const sites = new Map<GraphNode, DqMatMulSite>();
  for (const n of graph.nodes) {
    if (n.opType !== 'MatMul' || n.domain !== '') continue;
    const b = n.inputs[1] ?? '';
    const dq = producer.get(b);
    if (!dq || dq.opType !== 'DequantizeLinear' || dq.domain !== '') continue;
    if (uses.get(b) !== 1 || graphOutputs.has(b)) continue;
    // A node group with a DequantizeLinear on A or a QuantizeLinear after is ORT's QLinear/QDQ
    // fusion's, not this one's (the selector wants exactly one DequantizeLinear and no Q).
    if (producer.get(n.inputs[0] ?? '')?.opType === 'DequantizeLinear') continue;
    if (quantizers.has(n.outputs[0] ?? '')) continue;
    const blockSize = dqBlockSize(graph, dq);
    if (blockSize !== undefined) sites.set(n, { dq, blockSize });
  }
  return sites;
}

const NBITS_DTYPES = new Set(['int4', 'uint4', 'int8', 'uint8']);
/** ORT's block size for a per-channel or per-tensor weight (session.qdq_matmulnbits_block_size default). */
const NON_BLOCKED_BLOCK_SIZE = 32;

/** The MatMulNBits block size ORT gives this DequantizeLinear's weight, or undefined where it fuses none. */
function dqBlockSize(graph: Graph, dq: GraphNode): number | undefined {
  const w = graph.initializers.get(dq.inputs[0] ?? '');
  const scale = graph.initializers.get(dq.inputs[1] ?? '');
  const zpName = dq.inputs[2] ?? '';
  const zp = zpName === '' ? undefined : graph.initializers.get(zpName);
  if (!w || !scale || (zpName !== '' && !zp)) return undefined;
  if (!NBITS_DTYPES.has(w.dtype) || w.dims.length !== 2 || scale.dtype !== 'float32') return undefined;
  const [K, N] = w.dims as [number, number];
  const attrs = new AttributeReader(dq.attributes, dq.name);
  const blockSize = attrs.int('block_size', 0);
  if (blockSize > 0) {
    if (attrs.int('axis', 1) !== 0 || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) return undefined;
    const dims = [Math.ceil(K / blockSize), N];
    const same = (d: readonly number[]) => d.length === 2 && d[0] === dims[0] && d[1] === dims[1];
    return same(scale.dims) && (!zp || same(zp.dims)) ? blockSize : undefined;
  }
  if (scale.dims.length === 0) return !zp || zp.dims.length === 0 ? NON_BLOCKED_BLOCK_SIZE : undefined;
  if (scale.dims.length === 1 && scale.dims[0] === N && attrs.int('axis', 1) === 1)
    return !zp || (zp.dims.length === 1 && zp.dims[0] === N) ? NON_BLOCKED_BLOCK_SIZE : undefined;
  return undefined;
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
  const blocked = scale.dims.length === 2;
  if (
    blocked
      ? scale.dims[0] !== kBlocks || scale.dims[1] !== N
      : elementCount(scale.dims) !== (scale.dims.length ? N : 1)
  )
    throw badShape(ctx, `scale must be [${kBlocks}, ${N}], [${N}] or a scalar, got [${scale.dims.join(', ')}]`);
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

/**
 * W [K, N] 4- or 8-bit codes with blocked ([k_blocks, N]), per-channel ([N]) or per-tensor
 * scale and zero point, in MatMulNBits' layout (ORT's TransposeDQWeightsForMatMulNBits): a
 * per-channel or per-tensor constant is repeated in every block; signed codes are stored
 * shifted by 2^(bits−1), their zero point with them (absent: 2^(bits−1), MatMulNBits' default).
 */
function repack(w: Tensor, scale: Tensor, zeroPoint: Tensor | undefined, blockSize: number): NBitsMatrix {
  const [K, N] = w.dims as [number, number];
  const bits = w.dtype === 'int4' || w.dtype === 'uint4' ? 4 : 8;
  const kBlocks = Math.ceil(K / blockSize);
  const codes = toFloat64(w);
  const s = scale.data as Float32Array;
  const z = zeroPoint ? toFloat64(zeroPoint) : undefined;
  // [b, n] of a blocked constant, [n] of a per-channel one, [0] of a scalar.
  const at =
    scale.dims.length === 2
      ? (b: number, n: number) => b * N + n
      : scale.dims.length === 1
        ? (_: number, n: number) => n
        : () => 0;
  const signed = w.dtype === 'int4' || w.dtype === 'int8';
  const shift = signed ? 1 << (bits - 1) : 0;
  const blob = (blockSize * bits) / 8;
  const packed = new Uint8Array(N * kBlocks * blob);
  const scales = new Float32Array(N * kBlocks);
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const zps = new Uint8Array(N * zpRow);
  const put = (bytes: Uint8Array, base: number, j: number, v: number) => {
    const bit = j * bits;
    bytes[base + (bit >> 3)] = (bytes[base + (bit >> 3)] as number) | (v << (bit & 7));
  };
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const p = n * kBlocks + b;
      scales[p] = s[at(b, n)] as number;
      put(zps, n * zpRow, b, (z ? (z[at(b, n)] as number) : 0) + shift);
      for (let j = 0; j < blockSize && b * blockSize + j < K; j++)
        put(packed, p * blob, j, (codes[(b * blockSize + j) * N + n] as number) + shift);
    }
  }
  return { K, N, bits, blockSize, packed, scales, zeroPoints: zps };
}

import { broadcastDims, broadcastIndex } from './broadcast.js';
import type { OpContext } from './op.js';
import { badShape } from './op.js';

/**
 * The numpy.matmul shape rule shared by MatMul, MatMulInteger and QLinearMatMul: a 1-D left
 * operand is a row [1, K] and a 1-D right operand a column [K, 1] (the added axis is dropped
 * from the result); leading dims broadcast as stacks of matrices.
 */
export interface MatMulPlan {
  readonly M: number;
  readonly K: number;
  readonly N: number;
  readonly outDims: number[];
  /** Per output matrix (batch), the index of the A matrix and the B matrix it reads. */
  readonly aBatch: Int32Array;
  readonly bBatch: Int32Array;
  /** Batch dims of the output (broadcast of both operands' leading dims). */
  readonly batchDims: number[];
}

export function planMatMul(aDims: readonly number[], bDims: readonly number[], ctx: OpContext): MatMulPlan {
  if (aDims.length === 0 || bDims.length === 0) throw badShape(ctx, 'MatMul operands must have rank ≥ 1');
  const a = aDims.length === 1 ? [1, aDims[0] as number] : [...aDims];
  const b = bDims.length === 1 ? [bDims[0] as number, 1] : [...bDims];
  const M = a[a.length - 2] as number;
  const K = a[a.length - 1] as number;
  const Kb = b[b.length - 2] as number;
  const N = b[b.length - 1] as number;
  if (K !== Kb) throw badShape(ctx, `inner dimensions differ: [${aDims.join(', ')}] × [${bDims.join(', ')}]`);
  const aLead = a.slice(0, -2);
  const bLead = b.slice(0, -2);
  const batchDims = broadcastDims([aLead, bLead], ctx);
  const outDims = [...batchDims];
  if (aDims.length !== 1) outDims.push(M);
  if (bDims.length !== 1) outDims.push(N);
  return {
    M,
    K,
    N,
    outDims,
    aBatch: broadcastIndex(aLead, batchDims),
    bBatch: broadcastIndex(bLead, batchDims),
    batchDims,
  };
}

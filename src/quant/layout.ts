import { QuantkitError } from '../errors.js';

/**
 * Where each element's quantization parameters live, for any block shape (torchao's
 * `block_size`): the tensor is tiled by `blockShape`; the parameter tensor has shape
 * ceil(shape[k] / blockShape[k]) and is stored row-major. Tails shorter than a block form their
 * own, smaller block. Per-tensor, per-axis and per-group are all just block shapes.
 *
 * The layout is flattened to rows of the last dimension so hot loops stay tight: element
 * (row r, column j) uses parameter index `rowBase[r] + floor(j / colBlock)`.
 */
export interface BlockLayout {
  readonly shape: readonly number[];
  readonly blockShape: readonly number[];
  /** Shape of the scale / zero-point tensors. */
  readonly paramShape: readonly number[];
  readonly numBlocks: number;
  readonly count: number;
  readonly rows: number;
  readonly rowLen: number;
  readonly colBlock: number;
  /** Parameter index of each row's first column block. */
  readonly rowBase: Int32Array;
}

export interface Granularity {
  /** Per-axis (channel) quantization along this axis; negative counts from the end. */
  axis?: number | undefined;
  /** With `axis`: blocks of this many elements along the axis (ONNX blocked quantization). */
  blockSize?: number | undefined;
}

function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new QuantkitError(
      'QK_BAD_AXIS',
      `${what}: axis ${axis} is out of range for a tensor of rank ${rank}`,
      `use an axis in [${-rank}, ${rank - 1}]`,
    );
  }
  return a;
}

/**
 * Block shape for the common granularities: no axis → per-tensor; axis → one block per index
 * along it (per-channel); axis + blockSize → blocks of blockSize along the axis, 1 elsewhere;
 * blockSize alone → blocks along the last axis (how MatMulNBits / GPTQ group rows).
 */
export function blockShapeFor(shape: readonly number[], g: Granularity): number[] {
  const rank = shape.length;
  if (g.blockSize !== undefined) {
    if (!Number.isInteger(g.blockSize) || g.blockSize < 1) {
      throw new QuantkitError(
        'QK_BAD_BLOCK_SIZE',
        `block size ${g.blockSize} is not a positive integer`,
        'use e.g. 32, 64 or 128',
      );
    }
    if (rank === 0) return [];
    const a = normAxis(g.axis ?? rank - 1, rank, 'blocked quantization');
    return shape.map((_, k) => (k === a ? (g.blockSize as number) : 1));
  }
  if (g.axis === undefined) return [...shape];
  const a = normAxis(g.axis, rank, 'per-axis quantization');
  return shape.map((d, k) => (k === a ? 1 : d));
}

export function makeLayout(shape: readonly number[], blockShape: readonly number[]): BlockLayout {
  if (blockShape.length !== shape.length) {
    throw new QuantkitError(
      'QK_BAD_BLOCK_SHAPE',
      `block shape [${blockShape.join(', ')}] has rank ${blockShape.length} but the tensor [${shape.join(', ')}] has rank ${shape.length}`,
      'give one block extent per dimension',
    );
  }
  for (let k = 0; k < shape.length; k++) {
    const d = shape[k] as number;
    const b = blockShape[k] as number;
    if (!Number.isInteger(d) || d < 0)
      throw new QuantkitError(
        'QK_BAD_SHAPE',
        `dimension ${k} of shape [${shape.join(', ')}] is not a non-negative integer`,
        'fix the shape',
      );
    if (!Number.isInteger(b) || b < 1)
      throw new QuantkitError(
        'QK_BAD_BLOCK_SHAPE',
        `block extent ${b} at dimension ${k} is not a positive integer`,
        'block extents are ≥ 1',
      );
  }
  // Rank 0 behaves as [1].
  const s = shape.length === 0 ? [1] : shape;
  const bs = shape.length === 0 ? [1] : blockShape.map((b, k) => Math.min(b, Math.max(1, s[k] as number)));
  const paramShape = s.map((d, k) => Math.ceil(d / (bs[k] as number)));
  let count = 1;
  for (const d of s) count *= d;
  let numBlocks = 1;
  for (const p of paramShape) numBlocks *= p;
  const rank = s.length;
  const rowLen = s[rank - 1] as number;
  const colBlock = bs[rank - 1] as number;
  const rows = rowLen === 0 ? 0 : count / rowLen;
  const rowBase = new Int32Array(rows);
  // Odometer over the leading dims; parameter strides are row-major over paramShape.
  const pStride = new Array<number>(rank).fill(1);
  for (let k = rank - 2; k >= 0; k--) pStride[k] = (pStride[k + 1] as number) * (paramShape[k + 1] as number);
  const idx = new Array<number>(rank).fill(0);
  for (let r = 0; r < rows; r++) {
    let base = 0;
    for (let k = 0; k < rank - 1; k++)
      base += Math.floor((idx[k] as number) / (bs[k] as number)) * (pStride[k] as number);
    rowBase[r] = base;
    for (let k = rank - 2; k >= 0; k--) {
      idx[k] = (idx[k] as number) + 1;
      if ((idx[k] as number) < (s[k] as number)) break;
      idx[k] = 0;
    }
  }
  return {
    shape: [...shape],
    blockShape: [...bs],
    paramShape: shape.length === 0 ? [] : paramShape,
    numBlocks,
    count,
    rows,
    rowLen,
    colBlock,
    rowBase,
  };
}

/**
 * Calls `run(start, end, block)` for every maximal run of consecutive elements that share a
 * block. Hot loops go inside the callback, so the per-run cost is one call.
 */
export function forEachRun(layout: BlockLayout, run: (start: number, end: number, block: number) => void): void {
  const { rows, rowLen, colBlock, rowBase } = layout;
  for (let r = 0; r < rows; r++) {
    const base = rowBase[r] as number;
    const rowStart = r * rowLen;
    for (let j = 0, b = 0; j < rowLen; j += colBlock, b++) {
      run(rowStart + j, rowStart + Math.min(j + colBlock, rowLen), base + b);
    }
  }
}

/**
 * The values of each block gathered contiguously (a counting sort by block), for range choosers
 * that need a block's values together (percentile, MSE search). `offsets` has numBlocks + 1 entries.
 */
export function gatherBlocks(data: Float32Array, layout: BlockLayout): { values: Float32Array; offsets: Int32Array } {
  const offsets = new Int32Array(layout.numBlocks + 1);
  forEachRun(layout, (s, e, b) => {
    offsets[b + 1] = (offsets[b + 1] as number) + (e - s);
  });
  for (let b = 0; b < layout.numBlocks; b++) offsets[b + 1] = (offsets[b + 1] as number) + (offsets[b] as number);
  const fill = offsets.slice(0, layout.numBlocks);
  const values = new Float32Array(layout.count);
  forEachRun(layout, (s, e, b) => {
    let o = fill[b] as number;
    for (let i = s; i < e; i++) values[o++] = data[i] as number;
    fill[b] = o;
  });
  return { values, offsets };
}

import { QuantkitError } from '../errors.js';

/** An 8-bit matrix operand: uint8 or int8 codes, row-major. */
export type Int8Codes = Uint8Array | Int8Array;

/**
 * The 2-D case of ONNX MatMulInteger: A [M, K] and B [K, N] row-major, a per-tensor zero point
 * for A, and for B one per tensor (a number) or one per output column (length N).
 */
export interface GemmInt8Problem {
  readonly a: Int8Codes;
  readonly b: Int8Codes;
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly aZero: number;
  readonly bZero: number | ArrayLike<number>;
}

/** Checks sizes and zero points, so both kernels reject the same bad input with the same words. */
export function checkGemmInt8(p: GemmInt8Problem): void {
  const { a, b, m, k, n, aZero, bZero } = p;
  for (const [name, v] of [
    ['M', m],
    ['K', k],
    ['N', n],
  ] as const)
    if (!Number.isInteger(v) || v < 0)
      throw new QuantkitError('QK_BAD_SHAPE', `int8 GEMM: ${name} = ${v} is not a size`, 'pass whole numbers ≥ 0');
  if (a.length !== m * k)
    throw new QuantkitError(
      'QK_BAD_SHAPE',
      `int8 GEMM: A has ${a.length} codes, not M·K = ${m}·${k}`,
      'pass A as [M, K] row-major',
    );
  if (b.length !== k * n)
    throw new QuantkitError(
      'QK_BAD_SHAPE',
      `int8 GEMM: B has ${b.length} codes, not K·N = ${k}·${n}`,
      'pass B as [K, N] row-major',
    );
  checkZero('A', aZero, a);
  if (typeof bZero === 'number') checkZero('B', bZero, b);
  else {
    if (bZero.length !== n)
      throw new QuantkitError(
        'QK_BAD_SHAPE',
        `int8 GEMM: B has ${bZero.length} zero points for ${n} columns`,
        'pass one zero point per column of B, or a single number',
      );
    for (let j = 0; j < n; j++) checkZero('B', bZero[j] as number, b);
  }
}

function checkZero(which: string, z: number, codes: Int8Codes): void {
  const [lo, hi] = codes instanceof Uint8Array ? [0, 255] : [-128, 127];
  if (!Number.isInteger(z) || z < lo || z > hi)
    throw new QuantkitError(
      'QK_BAD_ATTRIBUTE',
      `int8 GEMM: zero point ${z} of ${which} is outside its type's range ${lo}…${hi}`,
      `give ${which} a zero point of the same type as its codes`,
    );
}

/**
 * The obvious loop: C[i, j] = Σ_k (A[i, k] − za)(B[k, j] − zb[j]), summed exactly in float64
 * (every partial sum is below K·255² < 2^53) and stored into an Int32Array, which keeps it modulo
 * 2^32 as an int32 accumulator would. The sums fit int32 without wrapping while
 * K·max|A − za|·max|B − zb| < 2^31: any K ≤ 33025 (255·255 per term), K ≤ 131071 for s8×s8
 * with zero points 0.
 */
export function gemmInt8Ref(p: GemmInt8Problem): Int32Array {
  checkGemmInt8(p);
  const { a, b, m, k, n, aZero, bZero } = p;
  const c = new Int32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      const zb = typeof bZero === 'number' ? bZero : (bZero[j] as number);
      let acc = 0;
      for (let t = 0; t < k; t++) acc += ((a[i * k + t] as number) - aZero) * ((b[t * n + j] as number) - zb);
      c[i * n + j] = acc;
    }
  return c;
}

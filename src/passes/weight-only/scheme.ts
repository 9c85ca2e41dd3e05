import { QuantkitError } from '../../errors.js';
import type { NBitsOptions } from '../../quant/nbits-quant.js';

/**
 * A weight-only scheme is a plain object; `kind` picks the handler (HANDLERS in index.ts). Adding a
 * scheme adds one row to SCHEMES.
 */
export type WeightOnlyScheme =
  | { readonly kind: 'dq-int8' }
  | {
      readonly kind: 'nbits';
      /** MatMulNBits storage bits; codeBits (3) puts fewer levels in 4-bit storage (quant/nbits-quant.ts). */
      readonly bits: 2 | 4 | 8;
      readonly codeBits?: 3;
      /** k-quant super-blocks (quant/superblock.ts): 6-bit scales and mins under fp16 per this many weights. */
      readonly superBlock?: 256;
      /** SpQR (quant/spqr.ts): 3-bit scales in second-level groups, individual fp16 outliers. */
      readonly spqr?: true;
      readonly symmetric: boolean;
      readonly defaultBlockSize: number;
    }
  | { readonly kind: 'bnb4'; readonly type: 'nf4' | 'fp4'; readonly defaultBlockSize: number }
  | { readonly kind: 'cast-store'; readonly dtype: 'bfloat16' }
  | { readonly kind: 'dq-float8'; readonly dtype: 'float8e4m3fn' | 'float8e5m2' }
  | { readonly kind: 'fp16' }
  | { readonly kind: 'kmeans' };

export const SCHEMES = {
  int8: { kind: 'dq-int8' },
  q4: { kind: 'nbits', bits: 4, symmetric: true, defaultBlockSize: 32 },
  'q4-asym': { kind: 'nbits', bits: 4, symmetric: false, defaultBlockSize: 32 },
  'q8-block': { kind: 'nbits', bits: 8, symmetric: true, defaultBlockSize: 32 },
  'q8-block-asym': { kind: 'nbits', bits: 8, symmetric: false, defaultBlockSize: 32 },
  // 3-bit levels in MatMulNBits' 4-bit storage: the fast 4-bit kernel runs them (README, low-bit).
  q3: { kind: 'nbits', bits: 4, codeBits: 3, symmetric: true, defaultBlockSize: 32 },
  'q3-asym': { kind: 'nbits', bits: 4, codeBits: 3, symmetric: false, defaultBlockSize: 32 },
  q2: { kind: 'nbits', bits: 2, symmetric: true, defaultBlockSize: 32 },
  'q4-k': { kind: 'nbits', bits: 4, symmetric: false, superBlock: 256, defaultBlockSize: 32 },
  'q2-asym': { kind: 'nbits', bits: 2, symmetric: false, defaultBlockSize: 32 },
  'q3-spqr': { kind: 'nbits', bits: 4, codeBits: 3, symmetric: false, spqr: true, defaultBlockSize: 16 },
  nf4: { kind: 'bnb4', type: 'nf4', defaultBlockSize: 64 },
  fp4: { kind: 'bnb4', type: 'fp4', defaultBlockSize: 64 },
  fp16: { kind: 'fp16' },
  bf16: { kind: 'cast-store', dtype: 'bfloat16' },
  fp8: { kind: 'dq-float8', dtype: 'float8e4m3fn' },
  'fp8-e5m2': { kind: 'dq-float8', dtype: 'float8e5m2' },
  kmeans: { kind: 'kmeans' },
} as const satisfies Record<string, WeightOnlyScheme>;

export type SchemeName = keyof typeof SCHEMES;

export const SCHEME_NAMES = Object.keys(SCHEMES) as SchemeName[];

/** The quantizer options of an nbits scheme at a block size. */
export function nbitsOptionsFor(
  s: Extract<WeightOnlyScheme, { kind: 'nbits' }>,
  blockSize: number,
  rtn: boolean,
): NBitsOptions {
  const o: NBitsOptions = { bits: s.bits, blockSize, symmetric: s.symmetric, rtn };
  return 'codeBits' in s ? { ...o, codeBits: s.codeBits } : o;
}

/** Block sizes MatMulNBits / MatMulBnb4 accept (power of two, ≥ 16; ORT's kernels ship these). */
export const BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

export function schemeByName(name: string): WeightOnlyScheme {
  if (!(name in SCHEMES)) {
    throw new QuantkitError(
      'QK_UNKNOWN_SCHEME',
      `unknown weight-only scheme '${name}'`,
      `use one of ${SCHEME_NAMES.join(', ')}`,
    );
  }
  return SCHEMES[name as SchemeName];
}

export function checkBlockSize(blockSize: number): number {
  if (!(BLOCK_SIZES as readonly number[]).includes(blockSize)) {
    throw new QuantkitError(
      'QK_BAD_BLOCK_SIZE',
      `block size ${blockSize} is not supported`,
      `use one of ${BLOCK_SIZES.join(', ')}`,
    );
  }
  return blockSize;
}

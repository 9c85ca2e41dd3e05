import type { MinifloatSpec } from './minifloat.js';
import { decodeMinifloat, encodeMinifloat } from './minifloat.js';

/** The four float8 formats of ONNX (float8.md), named as their DTypes. */
export type Float8Kind = 'float8e4m3fn' | 'float8e4m3fnuz' | 'float8e5m2' | 'float8e5m2fnuz';

export const FLOAT8_KINDS: readonly Float8Kind[] = ['float8e4m3fn', 'float8e4m3fnuz', 'float8e5m2', 'float8e5m2fnuz'];

// Field layouts and special codes, float8.md tables "Float8 types":
//   E4M3FN   bias 7:  no Inf; NaN S.1111.111; max S.1111.110 = 448
//   E4M3FNUZ bias 8:  no Inf, no -0; NaN 1.0000.000 (0x80); max S.1111.111 = 240
//   E5M2     bias 15: IEEE-like; Inf S.11111.00, NaN S.11111.{01,10,11}; max 57344
//   E5M2FNUZ bias 16: no Inf, no -0; NaN 0x80; max S.11111.11 = 57344
const SPECS: Record<Float8Kind, MinifloatSpec> = {
  float8e4m3fn: { mantissaBits: 3, exponentBits: 4, bias: 7, maxCode: 0x7e, infCode: -1, nanCode: 0x7f, nanSign: 'signed', unsignedZero: false },
  float8e4m3fnuz: { mantissaBits: 3, exponentBits: 4, bias: 8, maxCode: 0x7f, infCode: -1, nanCode: 0x80, nanSign: 'single', unsignedZero: true },
  float8e5m2: { mantissaBits: 2, exponentBits: 5, bias: 15, maxCode: 0x7b, infCode: 0x7c, nanCode: 0x7e, nanSign: 'signed', unsignedZero: false },
  float8e5m2fnuz: { mantissaBits: 2, exponentBits: 5, bias: 16, maxCode: 0x7f, infCode: -1, nanCode: 0x80, nanSign: 'single', unsignedZero: true },
};

export function float8Spec(kind: Float8Kind): MinifloatSpec {
  return SPECS[kind];
}

/** True when `code` is a NaN of `kind`. */
export function isFloat8NaN(code: number, kind: Float8Kind): boolean {
  switch (kind) {
    case 'float8e4m3fn': return (code & 0x7f) === 0x7f;
    case 'float8e5m2': return (code & 0x7f) > 0x7c;
    default: return code === 0x80;
  }
}

function isFloat8Inf(code: number, kind: Float8Kind): boolean {
  return kind === 'float8e5m2' && (code & 0x7f) === 0x7c;
}

/**
 * Code of the float8 `kind` nearest to the exact value of `x`, ties to even. Out-of-range and
 * infinite inputs follow ONNX Cast (operators-quantization.md), confirmed by the conformance data:
 * saturate → ±max for all four kinds (FNUZ included: Inf → ±max, not NaN as float8.md's older
 * table has it); no saturate → E5M2 ±Inf, E4M3FN ±NaN (0x7F/0xFF), FNUZ NaN (0x80).
 * -0 stays -0 except in FNUZ kinds (no -0: anything rounding to zero is +0). NaN → the positive NaN.
 */
export function encodeFloat8(x: number, kind: Float8Kind, saturate = true): number {
  return encodeMinifloat(x, SPECS[kind], saturate);
}

const TABLES: Record<Float8Kind, Float64Array> = {
  float8e4m3fn: buildTable('float8e4m3fn'),
  float8e4m3fnuz: buildTable('float8e4m3fnuz'),
  float8e5m2: buildTable('float8e5m2'),
  float8e5m2fnuz: buildTable('float8e5m2fnuz'),
};

function buildTable(kind: Float8Kind): Float64Array {
  const t = new Float64Array(256);
  for (let c = 0; c < 256; c++) t[c] = decodeMinifloat(c, SPECS[kind], (k) => isFloat8NaN(k, kind), (k) => isFloat8Inf(k, kind));
  return t;
}

/** Exact value of float8 `code` (a table lookup). */
export function decodeFloat8(code: number, kind: Float8Kind): number {
  return TABLES[kind][code & 0xff] as number;
}

/** The table of all 256 values of `kind`, indexed by code (read-only by convention). */
export function float8Table(kind: Float8Kind): Float64Array {
  return TABLES[kind];
}

/** Largest finite value of `kind`: 448, 240, 57344, 57344. */
export function float8Max(kind: Float8Kind): number {
  return decodeFloat8(SPECS[kind].maxCode, kind);
}

import { SCHEMES, type SchemeName } from '../passes/weight-only/index.js';
import type { SeriesKey } from './report-data.js';

/*
 * The typed fields a report groups a weight-only row by (report-data.ts SeriesKey), taken from the
 * scheme table and the options, never parsed back out of the row's label.
 */

type SchemeSpec = (typeof SCHEMES)[SchemeName];

/** Bits one stored weight costs, by handler kind (block scales aside); the compiler asks for a new kind. */
const STORED_BITS: { readonly [K in SchemeSpec['kind']]: (s: Extract<SchemeSpec, { kind: K }>) => number } = {
  'dq-int8': () => 8,
  nbits: (s) => s.bits,
  bnb4: () => 4,
  'cast-store': () => 16,
  'dq-float8': () => 8,
  fp16: () => 16,
  kmeans: () => 4, // the default `bits`; the index slot is 4 bits for 3 and 4
};

export function storedBits(scheme: SchemeName): number {
  const s = SCHEMES[scheme];
  return (STORED_BITS[s.kind] as (x: SchemeSpec) => number)(s);
}

/** A weight-only row's series: the scheme is the family; block size, rtn and +gptq make the variant. */
export function weightOnlySeries(
  scheme: SchemeName,
  o: {
    readonly blockSize?: number | null | undefined;
    readonly rtn?: boolean | undefined;
    readonly gptq?: boolean | undefined;
  } = {},
): SeriesKey {
  const parts = [
    o.blockSize === undefined || o.blockSize === null ? '' : `b${o.blockSize}`,
    o.rtn ? 'rtn' : '',
    o.gptq ? '+gptq' : '',
  ];
  return { family: scheme, variant: parts.filter(Boolean).join(' '), bits: storedBits(scheme) };
}

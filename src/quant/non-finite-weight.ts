/**
 * Thrown by the weight quantizers (nbits, bnb4) on a NaN or ±Inf weight; the pass turns it into a
 * QuantkitError naming the tensor, which the quantizers, working on bare arrays, do not know.
 */
export class NonFiniteWeight extends Error {
  constructor(
    readonly row: number,
    readonly col: number,
    readonly value: number,
  ) {
    super(`non-finite weight ${value} at output ${row}, input ${col}`);
  }
}

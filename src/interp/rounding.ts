/**
 * Round half to even (IEEE roundTiesToEven, NumPy rint), the rounding ONNX QuantizeLinear,
 * DynamicQuantizeLinear and QLinear* specify. Math.round breaks ties upward; step back on odd ties.
 */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

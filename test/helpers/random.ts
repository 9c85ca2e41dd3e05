/**
 * n seeded, roughly normal values (a sum of four uniforms from a small LCG, centred, times
 * `scale`): the synthetic weights and activations the low-bit and weight-only tests share.
 */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, () => scale * (u() + u() + u() + u() - 2));
}

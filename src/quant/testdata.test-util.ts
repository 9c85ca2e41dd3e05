// Seeded test data: normal and Student-t samples (Box–Muller on an LCG; no Math.random in tests).
export function uniforms(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
}

export function normal(n: number, seed: number, sigma = 1): Float32Array {
  const u = uniforms(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** Student-t with `dof` degrees of freedom: Z / sqrt(χ²_dof / dof). */
export function studentT(n: number, dof: number, seed: number): Float32Array {
  const z = normal(n, seed);
  const g = normal(n * dof, seed + 7919);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let chi = 0;
    for (let j = 0; j < dof; j++) chi += (g[i * dof + j] as number) ** 2;
    out[i] = (z[i] as number) / Math.sqrt(chi / dof);
  }
  return out;
}

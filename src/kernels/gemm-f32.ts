/**
 * A float32 GEMM built like the int8 kernels (B packed once into 4-column panels, 4×4 tiles in
 * local accumulators): the fp32 baseline the int8 GEMM is measured against, tuned alike.
 */
/** B [K, N] row-major into [⌈N/4⌉][K][4] panels (padded columns 0). */
export function packF32(b: Float32Array, k: number, n: number): Float32Array {
  const np = Math.ceil(n / 4);
  const panels = new Float32Array(np * k * 4);
  for (let t = 0; t < k; t++)
    for (let j = 0; j < n; j++) panels[(((j / 4) | 0) * k + t) * 4 + (j & 3)] = b[t * n + j] as number;
  return panels;
}

/** C [M, N] = A [M, K] · B for B packed by packF32. */
export function gemmF32Tiled(a: Float32Array, panels: Float32Array, m: number, k: number, n: number): Float32Array {
  const np = Math.ceil(n / 4);
  const ldc = np * 4;
  const c = new Float32Array(m * ldc);
  for (let i = 0; i < m; i += 4) {
    const rows = Math.min(4, m - i);
    // Rows past M read row i again and are not stored (so at M = 1 it does 4 rows of work).
    const r1 = (i + Math.min(1, rows - 1)) * k;
    const r2 = (i + Math.min(2, rows - 1)) * k;
    const r3 = (i + Math.min(3, rows - 1)) * k;
    const r0 = i * k;
    for (let p = 0; p < np; p++) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0; // prettier-ignore
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0; // prettier-ignore
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0; // prettier-ignore
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0; // prettier-ignore
      for (let t = 0, bi = p * k * 4; t < k; t++, bi += 4) {
        const a0 = a[r0 + t] as number;
        const a1 = a[r1 + t] as number;
        const a2 = a[r2 + t] as number;
        const a3 = a[r3 + t] as number;
        const b0 = panels[bi] as number;
        const b1 = panels[bi + 1] as number;
        const b2 = panels[bi + 2] as number;
        const b3 = panels[bi + 3] as number;
        c00 += a0 * b0;
        c01 += a0 * b1;
        c02 += a0 * b2;
        c03 += a0 * b3; // prettier-ignore
        c10 += a1 * b0;
        c11 += a1 * b1;
        c12 += a1 * b2;
        c13 += a1 * b3; // prettier-ignore
        c20 += a2 * b0;
        c21 += a2 * b1;
        c22 += a2 * b2;
        c23 += a2 * b3; // prettier-ignore
        c30 += a3 * b0;
        c31 += a3 * b1;
        c32 += a3 * b2;
        c33 += a3 * b3; // prettier-ignore
      }
      const tile = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
      for (let r = 0; r < rows; r++)
        for (let s = 0; s < 4; s++) c[(i + r) * ldc + p * 4 + s] = tile[r * 4 + s] as number;
    }
  }
  if (ldc === n) return c;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) out.set(c.subarray(i * ldc, i * ldc + n), i * n);
  return out;
}

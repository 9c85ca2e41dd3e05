import { describe, expect, it } from 'vitest';
import { createDynamicMap } from '../quant/dynamic-tree.js';
import { mulberry32 } from '../quant/prng.js';
import { adam32, adam8bit, type Optimizer } from './adam8bit.js';

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => scale * (r() + r() + r() + r() - 2) * Math.sqrt(3));
}

/**
 * bitsandbytes' reference 8-bit block-wise Adam step, transcribed: dequantize (code[idx] · absmax),
 * update in float32, requantize with absmax = max|x| (0 → 1) and idx = argmin |x / absmax − code|
 * (the first on ties, as torch.argmin). Independent of quant/blockwise.ts and codebook.ts.
 */
function bnbReferenceStep(
  p: Float32Array,
  g: Float32Array,
  s: { m: Uint8Array; am: Float32Array; v: Uint8Array; av: Float32Array },
  t: number,
  o: { lr: number; beta1: number; beta2: number; eps: number; block: number },
): void {
  const q1 = createDynamicMap(true);
  const q2 = createDynamicMap(false);
  const n = p.length;
  const m = Float32Array.from(s.m, (c, i) => (q1[c] as number) * (s.am[Math.floor(i / o.block)] as number));
  const v = Float32Array.from(s.v, (c, i) => (q2[c] as number) * (s.av[Math.floor(i / o.block)] as number));
  const bc1 = 1 - o.beta1 ** t;
  const bc2 = 1 - o.beta2 ** t;
  for (let i = 0; i < n; i++) {
    m[i] = m[i]! * o.beta1 + (1 - o.beta1) * g[i]!;
    v[i] = v[i]! * o.beta2 + (1 - o.beta2) * g[i]! * g[i]!;
    p[i] = p[i]! - (o.lr / bc1) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps));
  }
  const quant = (x: Float32Array, code: Float32Array, codes: Uint8Array, absmax: Float32Array) => {
    for (let b = 0; b * o.block < n; b++) {
      let a = 0;
      for (let i = b * o.block; i < Math.min(n, (b + 1) * o.block); i++) a = Math.max(a, Math.abs(x[i]!));
      absmax[b] = a;
      const div = a === 0 ? 1 : a;
      for (let i = b * o.block; i < Math.min(n, (b + 1) * o.block); i++) {
        let best = 0;
        for (let c = 1; c < 256; c++)
          if (Math.abs(x[i]! / div - code[c]!) < Math.abs(x[i]! / div - code[best]!)) best = c;
        codes[i] = best;
      }
    }
  };
  quant(m, q1, s.m, s.am);
  quant(v, q2, s.v, s.av);
}

function run(opt: Optimizer, p: Float32Array, grad: (p: Float32Array, t: number) => Float32Array, steps: number) {
  for (let t = 0; t < steps; t++) opt.step([p], [grad(p, t)]);
}

describe('Adam, 32-bit state (the reference)', () => {
  it('hand-worked first step: p − lr · g / (|g| + ε) (bias corrections cancel the (1 − β) factors)', () => {
    const p = Float32Array.of(1, -2, 0.5);
    const g = Float32Array.of(0.3, -4, 0);
    adam32([3], { lr: 0.1 }).step([p], [g]);
    expect(p[0]).toBeCloseTo(1 - 0.1 * (0.3 / (0.3 + 1e-8)), 6);
    expect(p[1]).toBeCloseTo(-2 + 0.1, 6);
    expect(p[2]).toBe(0.5);
  });

  it('AdamW decays the weights apart from the gradient; Adam adds the decay to it', () => {
    const p1 = Float32Array.of(2);
    const p2 = Float32Array.of(2);
    adam32([1], { lr: 0.1, weightDecay: 0.5, decoupled: true }).step([p1], [Float32Array.of(0)]);
    adam32([1], { lr: 0.1, weightDecay: 0.5 }).step([p2], [Float32Array.of(0)]);
    expect(p1[0]).toBeCloseTo(2 * (1 - 0.05), 6); // no gradient: only the decay
    expect(p2[0]).toBeCloseTo(2 - 0.1, 5); // the decay as a gradient: a full Adam step
  });
});

describe('8-bit block-wise Adam', () => {
  it("five steps equal bitsandbytes' reference update, transcribed (parameters within 1e-4)", () => {
    const n = 5000; // two blocks of 2048 and a short one
    const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, block: 2048 };
    const p = randn(n, 1);
    const ref = Float32Array.from(p);
    const s = { m: new Uint8Array(n), am: new Float32Array(3), v: new Uint8Array(n), av: new Float32Array(3) };
    const opt = adam8bit([n], { lr: o.lr });
    for (let t = 1; t <= 5; t++) {
      const g = randn(n, 100 + t, 0.1);
      opt.step([p], [g]);
      bnbReferenceStep(ref, g, s, t, o);
    }
    let maxRel = 0;
    for (let i = 0; i < n; i++)
      maxRel = Math.max(maxRel, Math.abs(p[i]! - ref[i]!) / Math.max(1e-3, Math.abs(ref[i]!)));
    expect(maxRel).toBeLessThan(1e-4);
  });

  it('state bytes: 2 per parameter plus two float32 absmax per 2048 — 0.2505× of float32 Adam', () => {
    const n = 1 << 20;
    const b8 = adam8bit([n], { lr: 1e-3 }).stateBytes();
    const b32 = adam32([n], { lr: 1e-3 }).stateBytes();
    expect(b8).toBe(2 * n + 8 * (n / 2048));
    expect(b8 / b32).toBeLessThanOrEqual(0.26);
    // Tensors under min8bitSize (and keep32 slots) keep 8 bytes per element, as bitsandbytes does.
    expect(adam8bit([1000, 8192], { lr: 1e-3 }).stateBytes()).toBe(8000 + 2 * 8192 + 8 * 4);
    expect(adam8bit([8192], { lr: 1e-3, keep32: new Set([0]) }).stateBytes()).toBe(8 * 8192);
  });

  for (const decoupled of [false, true]) {
    it(`${decoupled ? 'AdamW' : 'Adam'}: the 32-bit trajectory on an ill-conditioned quadratic, and the final loss of a least-squares fit within 2 %, same seeds`, () => {
      // ½ Σ a_i (w_i − w*_i)², curvatures from 1e-2 to 1e2.
      const n = 10000;
      const a = Float32Array.from({ length: n }, (_, i) => 10 ** (-2 + (4 * i) / n));
      const target = randn(n, 7);
      const quadGrad = (w: Float32Array) => Float32Array.from(w, (x, i) => a[i]! * (x - target[i]!));
      const quadLoss = (w: Float32Array) => w.reduce((s, x, i) => s + 0.5 * a[i]! * (x - target[i]!) ** 2, 0);
      const cfg = { lr: 0.05, weightDecay: decoupled ? 1e-2 : 0, decoupled };
      const w32 = new Float32Array(n);
      const w8 = new Float32Array(n);
      const l0 = quadLoss(w32);
      run(adam32([n], cfg), w32, quadGrad, 300);
      run(adam8bit([n], cfg), w8, quadGrad, 300);
      // Both at the optimum (a loss ratio of two near-zero losses says nothing), and there together.
      expect(quadLoss(w32)).toBeLessThan(1e-4 * l0);
      expect(quadLoss(w8)).toBeLessThan(1e-4 * l0);
      let d = 0;
      let norm = 0;
      for (let i = 0; i < n; i++) {
        d += (w8[i]! - w32[i]!) ** 2;
        norm += target[i]! ** 2;
      }
      expect(Math.sqrt(d / norm)).toBeLessThan(0.01);

      // Least squares: W [64, 80] from mini-batches of X [512, 64], Y = X W* + noise.
      const K = 64;
      const N = 80;
      const S = 512;
      const X = randn(S * K, 11);
      const Wt = randn(K * N, 12, 0.5);
      const Y = new Float32Array(S * N);
      const noise = randn(S * N, 13, 0.1);
      for (let s = 0; s < S; s++)
        for (let j = 0; j < N; j++) {
          let acc = noise[s * N + j]!;
          for (let k = 0; k < K; k++) acc += X[s * K + k]! * Wt[k * N + j]!;
          Y[s * N + j] = acc;
        }
      const lsq = (W: Float32Array, rows: readonly number[]) => {
        const grad = new Float32Array(K * N);
        let loss = 0;
        for (const s of rows) {
          for (let j = 0; j < N; j++) {
            let e = -Y[s * N + j]!;
            for (let k = 0; k < K; k++) e += X[s * K + k]! * W[k * N + j]!;
            loss += (0.5 * e * e) / rows.length;
            for (let k = 0; k < K; k++) grad[k * N + j] = grad[k * N + j]! + (X[s * K + k]! * e) / rows.length;
          }
        }
        return { loss, grad };
      };
      const all = Array.from({ length: S }, (_, i) => i);
      // Mini-batches of 32 from one seeded stream: the loss settles where lr and the batch noise put it.
      const fit = (opt: Optimizer) => {
        const W = new Float32Array(K * N);
        const r = mulberry32(5);
        run(
          opt,
          W,
          (w) =>
            lsq(
              w,
              Array.from({ length: 32 }, () => Math.floor(r() * S)),
            ).grad,
          400,
        );
        return lsq(W, all).loss;
      };
      const l32 = fit(adam32([K * N], { ...cfg, lr: 0.02 }));
      const l8 = fit(adam8bit([K * N], { ...cfg, lr: 0.02 }));
      expect(Math.abs(l8 / l32 - 1)).toBeLessThan(0.02);
    });
  }

  it('mismatched tensors and bad hyperparameters are named errors', () => {
    const opt = adam8bit([4096], { lr: 1e-3 });
    expect(() => opt.step([new Float32Array(4096)], [])).toThrow(/1 tensors/);
    expect(() => opt.step([new Float32Array(10)], [new Float32Array(10)])).toThrow(/tensor 0/);
    expect(() => adam8bit([1], { lr: -1 })).toThrow(/lr -1/);
    expect(() => adam32([1], { lr: 1, beta2: 1 })).toThrow(/beta2 1/);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { QuantkitError } from '../errors.js';
import { quantizeAffine } from '../quant/affine.js';
import { makeLayout } from '../quant/layout.js';
import { mulberry32 } from '../quant/prng.js';
import { quantizeResidentWasm } from './compute-wasm.js';
import {
  allocKernelCodes,
  allocKernelFloat32,
  quantizeLinearInt8,
  quantizeLinearInt8Resident,
  setKernelPath,
  type KernelPath,
} from './index.js';

afterAll(() => setKernelPath('auto'));

/** x as [outer, C, inner] with exact ties (k + 0.5)·s in channel 0 and values past both ends of the range. */
function input(outer: number, c: number, inner: number, seed: number): { x: Float32Array; scale: Float32Array } {
  const u = mulberry32(seed);
  const x = Float32Array.from({ length: outer * c * inner }, () => -8 + 16 * u());
  const scale = Float32Array.from({ length: c }, () => 0.001 + 0.05 * u());
  scale[0] = 2 ** -6;
  for (let i = 0; i < Math.min(40, inner); i++) x[i] = (i - 20 + 0.5) * 2 ** -6;
  return { x, scale };
}

for (const path of ['auto', 'js'] as KernelPath[]) {
  describe(`quantize in place on the ${path === 'auto' ? 'WebAssembly SIMD' : 'JavaScript'} path`, () => {
    // Per tensor, per channel with runs off 16 (and longer than one 16 Ki-float chunk), per column.
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 1, 20000],
      [2, 3, 37],
      [1, 3, 7000],
      [33, 7, 1],
      [800, 24, 1],
    ];
    for (const signed of [true, false])
      it(`${signed ? 'int8' : 'uint8'}: the codes of quantizeLinearInt8 and of the reference, zero points at both ends`, () => {
        setKernelPath(path);
        let seed = 1;
        for (const [outer, c, inner] of shapes) {
          const { x, scale } = input(outer, c, inner, seed++);
          const xs = allocKernelFloat32(x.length);
          xs.view().set(x);
          for (const z of signed ? [-128, 127, 3] : [0, 255, 128]) {
            const zeroPoint = Int32Array.from({ length: c }, (_, j) => (z === 3 || z === 128 ? z + j : z));
            const p = { scale, zeroPoint, signed, inner };
            const out = signed ? allocKernelCodes(x.length, true) : allocKernelCodes(x.length, false);
            quantizeLinearInt8Resident(xs, p, out);
            const layout = makeLayout([outer, c, inner], [outer, 1, inner]);
            const params = { scale, zeroPoint, qmin: signed ? -128 : 0, qmax: signed ? 127 : 255 };
            const want = quantizeAffine(x, layout, params, signed ? new Int8Array(x.length) : new Uint8Array(x.length));
            // Computed before the view is taken: another kernel call may grow the memory, detaching views.
            const fast = quantizeLinearInt8(x, p);
            expect(out.view()).toEqual(want);
            expect(out.view()).toEqual(fast);
            out.release();
          }
          xs.release();
        }
      });

    it('NaN and ±Inf are named (default) or clamped, as quantizeLinearInt8 does', () => {
      setKernelPath(path);
      const x = allocKernelFloat32(100);
      x.view().set(input(1, 1, 100, 9).x);
      x.view()[70] = NaN;
      const p = { scale: Float32Array.of(0.01), signed: true, inner: 100 };
      const out = allocKernelCodes(100, true);
      expect(() => quantizeLinearInt8Resident(x, p, out)).toThrow(/70/);
      x.view()[70] = -Infinity;
      x.view()[20] = NaN;
      quantizeLinearInt8Resident(x, { ...p, nonFinite: 'clamp' }, out);
      expect([out.view()[70], out.view()[20]]).toEqual([-128, 0]);
    });
  });
}

describe('kernel arrays', () => {
  it('keep their contents when the kernel memory grows, and views taken afresh see them', () => {
    setKernelPath('auto');
    const x = allocKernelFloat32(1000);
    x.view().set(input(1, 1, 1000, 4).x);
    const before = x.view().slice();
    const big = allocKernelFloat32(8 << 20); // 32 MiB: grows the memory, detaching views made before
    expect(x.view()).toEqual(before);
    big.release();
    const out = allocKernelCodes(1000, false);
    const p = { scale: Float32Array.of(0.05), zeroPoint: [128], signed: false, inner: 1000 };
    quantizeLinearInt8Resident(x, p, out);
    const fast = quantizeLinearInt8(before, p);
    expect(out.view()).toEqual(fast);
  });

  it('on the WebAssembly path the kernel itself runs in place (it is not the fallback that answers)', () => {
    setKernelPath('auto');
    const { x, scale } = input(2, 3, 5000, 8);
    const xs = allocKernelFloat32(x.length);
    xs.view().set(x);
    const out = allocKernelCodes(x.length, true);
    const at = (a: object) => (a as { region: { at: number } }).region.at;
    const p = { scale, zeroPoint: Int32Array.of(-128, 0, 127), signed: true, inner: 5000 };
    expect(quantizeResidentWasm(at(xs), x.length, p, at(out))).toBe(true);
    const fast = quantizeLinearInt8(x, p);
    expect(out.view()).toEqual(fast);
  });

  it('a wrong output type or length, and use after release(), are user errors', () => {
    const x = allocKernelFloat32(10);
    const p = { scale: Float32Array.of(0.1), signed: true, inner: 10 };
    expect(() => quantizeLinearInt8Resident(x, p, allocKernelCodes(10, false))).toThrow(QuantkitError);
    expect(() => quantizeLinearInt8Resident(x, p, allocKernelCodes(9, true))).toThrow(/holds 9 int8 codes/);
    x.release();
    expect(() => x.view()).toThrow(/after release/);
  });
});

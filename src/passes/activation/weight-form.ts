/**
 * Which s8 weight codes the activation schemes write, chosen by the CPU the model will run on.
 *
 * ONNX Runtime's x86 u8×s8 kernels on CPUs without VNNI (AVX2, and AVX-512 without VNNI) use
 * `vpmaddubsw`, which adds each pair of adjacent u8·s8 products in int16 with saturation
 * (255·127·2 = 64770 > 32767); s8 activations are first flipped to u8 (x ^ 0x80), so they saturate
 * alike. VNNI (`vpdpbusd`), ARM's sdot/udot and WebAssembly accumulate in int32 and do not.
 *
 * Measured (ORT 1.30 on its AVX2 path under `qemu-x86_64 -cpu Haswell`, against this VNNI host;
 * full table in the README and scripts/measure-saturation.ts):
 *   digits CNN int8-static, mean |Δlogit| vs fp32 (minmax):
 *     full range 0.030 here, 0.771 on AVX2; seven-bit …; pair-safe … on both.
 * 'pair-safe' keeps the full-range scale on every channel whose two largest same-sign weights are
 * not both near max|w|, so it loses far less than 'seven-bit', which halves every channel's grid.
 */
export const WEIGHT_FORMS = ['pair-safe', 'seven-bit', 'full'] as const;
export type WeightForm = (typeof WEIGHT_FORMS)[number];
export const DEFAULT_WEIGHT_FORM: WeightForm = 'pair-safe';

/**
 * `quantize --target`: 'any' writes codes every CPU runs exactly; the others name CPUs whose
 * integer kernels accumulate in int32 without a saturating int16 step, where full range is exact.
 */
export const TARGETS = ['any', 'vnni', 'arm', 'wasm'] as const;
export type Target = (typeof TARGETS)[number];
export const DEFAULT_TARGET: Target = 'any';

export function isTarget(s: string): s is Target {
  return (TARGETS as readonly string[]).includes(s);
}

export function weightFormFor(target: Target): WeightForm {
  return target === 'any' ? DEFAULT_WEIGHT_FORM : 'full';
}

/** What the report says about the weights written: the form, how many channels it coarsened, and why. */
export interface WeightFormReport {
  readonly form: WeightForm;
  readonly target: Target | null;
  readonly channels: number;
  readonly reducedChannels: number;
  readonly reason: string;
}

export function weightFormReport(form: WeightForm, target: Target | null, channels: number, reducedChannels: number): WeightFormReport {
  const reason = form === 'full'
    ? `full-range s8 [-127, 127]${target ? ` for --target ${target}` : ''}: exact only where u8×s8 kernels accumulate in int32 (VNNI, ARM, WebAssembly); x86 without VNNI saturates pairs of products`
    : form === 'pair-safe'
      ? `pair-safe s8 (${reducedChannels} of ${channels} channels' scales raised) so u8×s8 kernels without VNNI cannot saturate; --target vnni|arm|wasm for full range`
      : `7-bit s8 [-64, 64] on all ${channels} channels so u8×s8 kernels without VNNI cannot saturate`;
  return { form, target, channels, reducedChannels, reason };
}

/**
 * Which s8 weight codes the activation schemes write, chosen by the CPU the model will run on.
 *
 * ONNX Runtime's x86 u8×s8 kernels on CPUs without VNNI (AVX2, and AVX-512 without VNNI) use
 * `vpmaddubsw`, which adds each pair of adjacent u8·s8 products in int16 with saturation
 * (255·127·2 = 64770 > 32767); s8 activations are first flipped to u8 (x ^ 0x80), so they saturate
 * alike. VNNI (`vpdpbusd`), ARM's sdot/udot and WebAssembly accumulate in int32 and do not.
 *
 * Measured (ORT 1.30 on this VNNI host, and its AVX2 path reproduced by the interpreter's
 * --emulate avx2-u8s8, which matched ORT under `qemu-x86_64 -cpu Haswell` exactly; table in the
 * README, scripts/measure-saturation.ts), digits CNN int8-static minmax, mean |Δlogit| vs fp32:
 *   full 0.030 with VNNI, 0.771 on AVX2 (accuracy 99.60 → 98.99 %); seven-bit 0.065; pair-safe 0.071
 *   (both exact everywhere). LM int8-dynamic perplexity (fp32 3.4949): full 3.4979 with VNNI and
 *   1.9 % of its dot products saturate on AVX2; seven-bit 3.4940; pair-safe 3.4992.
 * On these models nearly every channel's two largest same-sign weights are both near max|w|, so the
 * pair-safe scale lands near seven-bit's and the two measure alike (within ±0.005 |Δlogit|, ±0.5 %
 * perplexity, either way by model). Pair-safe is the default because its scale is never coarser than
 * seven-bit's and keeps full range on any channel with one dominant weight per sign.
 * s8 activations of int8-static (QDQ) need it too (measured under qemu: full range 0.050 → 0.497
 * mean |Δlogit| on the CNN with --activations s8); int8-dynamic --per-token's s8 × s8 MatMulInteger
 * does not (perplexities on AVX2 equal VNNI's), so it writes full range.
 */
import { DEFAULT_WEIGHT_FORM, type WeightForm } from '../../quant/pair-safe.js';

export { DEFAULT_WEIGHT_FORM, WEIGHT_FORMS, type WeightForm } from '../../quant/pair-safe.js';

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

export function weightFormReport(
  form: WeightForm,
  target: Target | null,
  channels: number,
  reducedChannels: number,
  signedActivations = false,
): WeightFormReport {
  const reason = signedActivations
    ? 'full-range s8 [-127, 127]: per-token s8 × s8 kernels do not saturate on any CPU'
    : form === 'full'
      ? `full-range s8 [-127, 127]${target ? ` for \`target\` ${target}` : ''}: exact only where u8×s8 kernels accumulate in int32 (VNNI, ARM, WebAssembly); x86 without VNNI saturates pairs of products`
      : form === 'pair-safe'
        ? `pair-safe s8 (${reducedChannels} of ${channels} channels' scales raised) so u8×s8 kernels without VNNI cannot saturate; \`target\` vnni|arm|wasm for full range`
        : `7-bit s8 [-64, 64] on all ${channels} channels so u8×s8 kernels without VNNI cannot saturate`;
  return { form, target, channels, reducedChannels, reason };
}

import { tf } from './tf.js';
import { QuantkitError } from '../errors.js';
import { adam32, adam8bit, type Adam8bitConfig, type Optimizer } from './adam8bit.js';

/*
 * adam8bit.ts's optimizers as a TensorFlow.js optimizer, so a tfjs training loop
 * (`optimizer.minimize(loss)`) takes them as it takes tf.train.adam: gradients are read to
 * Float32Arrays, the state is updated outside tfjs (8-bit codes, or float32 for the reference),
 * and each variable is assigned its new value. The state is made on the first step, one slot per
 * variable in the order the gradients first come.
 */

export type StateBits = 8 | 32;

export class BlockwiseAdam extends tf.Optimizer {
  static className = 'BlockwiseAdam';
  private opt: Optimizer | undefined;
  private names: string[] = [];
  /** The rate of the next steps (a schedule sets it); undefined: the configured `lr`. */
  learningRate: number | undefined;

  constructor(
    private readonly config: Adam8bitConfig,
    readonly bits: StateBits = 8,
  ) {
    super();
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const entries: [string, tf.Tensor][] = Array.isArray(variableGradients)
      ? variableGradients.map((v) => [v.name, v.tensor])
      : Object.entries(variableGradients);
    if (!this.opt) {
      this.names = entries.map(([name]) => name);
      const sizes = entries.map(([, g]) => g.size);
      this.opt = this.bits === 8 ? adam8bit(sizes, this.config) : adam32(sizes, this.config);
    }
    const byName = new Map(entries);
    const vars = this.names.map((name) => {
      const v = tf.engine().registeredVariables[name];
      if (!v)
        throw new QuantkitError(
          'QK_OPTIMIZER_STATE',
          `the optimizer's variable '${name}' no longer exists`,
          'make a new optimizer for a new model',
        );
      return v;
    });
    if (entries.length !== this.names.length || this.names.some((n) => !byName.has(n)))
      throw new QuantkitError(
        'QK_OPTIMIZER_STATE',
        `the step's gradients (${entries.map(([n]) => n).join(', ')}) are not the optimizer's variables (${this.names.join(', ')})`,
        'minimize over the same variables at every step',
      );
    const params = vars.map((v) => Float32Array.from(v.dataSync() as Float32Array));
    const grads = this.names.map((n) => Float32Array.from((byName.get(n) as tf.Tensor).dataSync() as Float32Array));
    this.opt.step(params, grads, this.learningRate);
    vars.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(params[i] as Float32Array, v.shape, 'float32'))));
    this.incrementIterations();
  }

  /** Bytes the optimizer state holds (0 before the first step). */
  stateBytes(): number {
    return this.opt?.stateBytes() ?? 0;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const c = this.config;
    const out: tf.serialization.ConfigDict = { lr: c.lr, bits: this.bits };
    for (const [k, v] of Object.entries(c)) if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    return out;
  }
}

import { QuantkitError } from '../../errors.js';
import { NonFiniteWeight } from '../../quant/non-finite-weight.js';

/**
 * Runs a quantizer of bare arrays on the weight `weight`, turning the NonFiniteWeight it throws on
 * a NaN or ±Inf into the user error that names the tensor and the element.
 */
export function quantizingWeight<T>(weight: string, quantize: () => T): T {
  try {
    return quantize();
  } catch (e) {
    if (e instanceof NonFiniteWeight)
      throw new QuantkitError(
        'QK_NONFINITE_WEIGHTS',
        `weight '${weight}' has a non-finite value (${e.value}) at input ${e.col}, output ${e.row}`,
        'fix the weights, or `exclude` this tensor',
      );
    throw e;
  }
}

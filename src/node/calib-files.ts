import { readFileSync } from 'node:fs';
import { OptionError, QuantkitError } from '../errors.js';
import { readNpy } from '../io/npy/npy.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Calibration arrays from `[name=]file.npy` bindings (positional ones bind the model's inputs in
 * order), by graph input name; axis 0 of each is the sample axis.
 */
export function readCalibFiles(bindings: readonly string[], inputNames: readonly string[]): Map<string, Tensor> {
  const data = new Map<string, Tensor>();
  let positional = 0;
  for (const arg of bindings) {
    const eq = arg.indexOf('=');
    const named = eq > 0 && !arg.slice(0, eq).includes('/');
    const name = named ? arg.slice(0, eq) : inputNames[positional++];
    const path = named ? arg.slice(eq + 1) : arg;
    if (name === undefined)
      throw new OptionError(
        'QK_TOO_MANY_INPUTS',
        `${bindings.length} \`calib\` files for a model with ${inputNames.length} input(s) (${inputNames.join(', ')})`,
        'drop the extra `calib`',
        ['calib'],
      );
    if (!inputNames.includes(name))
      throw new OptionError(
        'QK_UNKNOWN_INPUT',
        `the model has no input named '${name}' (\`calib\` ${arg})`,
        `its inputs are: ${inputNames.join(', ')}`,
        ['calib'],
      );
    if (!path.endsWith('.npy'))
      throw new OptionError(
        'QK_INPUT_FORMAT',
        `\`calib\` '${path}' is not a .npy file`,
        'give calibration arrays as NumPy .npy, first axis = samples',
        ['calib'],
      );
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new QuantkitError(
        'QK_FILE_UNREADABLE',
        `cannot read '${path}' (${(e as NodeJS.ErrnoException).code ?? 'unknown'})`,
        'check the path and its permissions',
      );
    }
    data.set(name, readNpy(bytes, path));
  }
  return data;
}

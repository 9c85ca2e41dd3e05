import { OptionError, type QuantkitError } from '../errors.js';

/*
 * The library names its options in its own terms (OptionError.options: `doubleQuant`, `method`);
 * the CLI prints them as the flags a user types. The wording of flags lives here, in cli/.
 */

export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  scheme: '--scheme',
  blockSize: '--block-size',
  doubleQuant: '--double-quant',
  format: '--format',
  method: '--method',
  calib: '--calib',
  calibBatch: '--calib-batch',
  smoothQuant: '--smoothquant',
  exclude: '--exclude',
};

/** First mention of each named option in `text`, as its flag (later mentions are the user's own text). */
function withFlags(text: string, options: readonly string[]): string {
  let out = text;
  for (const o of options) {
    const flag = OPTION_FLAGS[o];
    if (flag !== undefined) out = out.replace(new RegExp(`\\b${o}\\b`), flag);
  }
  return out;
}

/** The one-line terminal form of a user error, with library option names shown as flags. */
export function formatCliError(e: QuantkitError): string {
  if (!(e instanceof OptionError)) return e.format();
  return `error ${e.code}: ${withFlags(e.message, e.options)}${e.hint ? ` (${withFlags(e.hint, e.options)})` : ''}`;
}

/**
 * Every failure a user can cause is a QuantkitError: a stable code, a message that names the
 * file/tensor/node at fault, and a hint that says the way out. The CLI prints
 * `error QK_CODE: message (hint)` and exits 1; anything else is an internal error (exit 2).
 */
export class QuantkitError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.name = 'QuantkitError';
    this.code = code;
    this.hint = hint;
  }

  /** One line for a terminal: code, what went wrong, and what to do about it. */
  format(): string {
    return `error ${this.code}: ${this.message}${this.hint ? ` (${this.hint})` : ''}`;
  }
}

export function isQuantkitError(e: unknown): e is QuantkitError {
  return e instanceof QuantkitError;
}

/**
 * A bad option, named in library terms (`doubleQuant`, `method`): `options` lists the option
 * names its message and hint mention, so each front end shows them in its own spelling (the CLI's
 * flags: cli/option-flags.ts).
 */
export class OptionError extends QuantkitError {
  readonly options: readonly string[];

  constructor(code: string, message: string, hint: string | undefined, options: readonly string[]) {
    super(code, message, hint);
    this.options = options;
  }
}

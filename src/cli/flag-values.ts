import { QuantkitError } from '../errors.js';

/** A flag's value checked against the words it takes. */
export function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new QuantkitError(
      'QK_BAD_FLAG',
      `${flag} '${value}' is not one of ${allowed.join(', ')}`,
      `use ${allowed.join(' or ')}`,
    );
  return value as T;
}

/** A numeric flag's value; undefined when the flag was not given (an empty value is not 0). */
export function numberFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || value.trim() === '')
    throw new QuantkitError(
      'QK_BAD_FLAG',
      `${flag} '${value}' is not a number`,
      `write a plain decimal number after ${flag}`,
    );
  return n;
}

/** A repeatable, comma-separated flag's values, gathered in order (commander's argument parser). */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  ];
}

import { InvalidOptionError } from './errors/invalid-option.error.js';
import { messages } from './errors/messages.js';

// The checks every option object goes through (for `typeorm-context.options.ts`): a value of the
// wrong kind, or a key no option has, fails with `InvalidOptionError` (a typo gets a "did you mean").

/** Fails with `InvalidOptionError`: `option` got `value`, and accepts `expected`. */
export function fail(option: string, value: unknown, expected: string): never {
  throw new InvalidOptionError(messages.invalidOption(option, value, expected));
}

/** Fails unless `ok` (see `fail()`). */
export function check(ok: boolean, option: string, value: unknown, expected: string): void {
  if (!ok) fail(option, value, expected);
}

/** Fails unless `options` is undefined or a plain object whose keys are all in `known`. */
export function checkShape(options: unknown, known: readonly string[], what: string): void {
  const isObject = typeof options === 'object' && options !== null && !Array.isArray(options);
  if (!isObject) {
    if (options !== undefined) fail(what, options, `an object with ${known[0]} and the like`);
    return;
  }
  for (const key in options) {
    if (known.includes(key) || !Object.hasOwn(options, key)) continue;
    const value = (options as Record<string, unknown>)[key];
    const near = known.find((name) => distance(name, key) <= 2);
    fail(
      `'${key}' in ${what}`,
      value,
      `${near ? `'${near}' (a typo?), or ` : ''}one of ${known.map((k) => `'${k}'`).join(', ')}`,
    );
  }
}

/** Levenshtein distance, for "did you mean" in option errors. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        row[j]! + 1,
        next[j - 1]! + 1,
        row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length]!;
}

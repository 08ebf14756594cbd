/**
 * The unit of work a message of the `unit` or `transaction` channel belongs to, kept on the
 * message under a symbol, not enumerable: subscribers of the public channels do not see it. The
 * channels are process-wide; the module's own subscribers (the slow-transaction log) read it to
 * tell their app's messages from another app's, and to name the unit in their lines.
 */

const UNIT = Symbol('nestjs-typeorm-context unit');

/** Records on `message` the unit it belongs to; returns `message`. */
export function attachUnit<T extends object>(message: T, unit: object): T {
  Object.defineProperty(message, UNIT, { value: unit, configurable: true });
  return message;
}

/** The unit `attachUnit()` recorded on `message`, if any. */
export function unitOf(message: object): unknown {
  return (message as Record<symbol, unknown>)[UNIT];
}

import { Logger } from '@nestjs/common';
import { contextStorage } from './context/context-storage.js';

/** A unit of work as its log lines name it (see `UnitOfWork.logTag()`). */
export interface LogUnit {
  /** `unit 12` or `unit 12 req abc-1`: the unit's id and the request id of the app, if any. */
  logTag(): string;
}

/** `message` with the tag of `unit` in front (`[unit 12 req abc-1] message`); as it is without one. */
function tagged(message: unknown, unit: LogUnit | undefined): unknown {
  if (unit === undefined || typeof message !== 'string') return message;
  return `[${unit.logTag()}] ${message}`;
}

/**
 * The unit of work the code logging runs in (or whose after-completion callback it runs), read
 * only when a line is logged: nothing is built for units that log nothing.
 */
function currentUnit(): LogUnit | undefined {
  return contextStorage.getStore()?.routingUnit;
}

/**
 * Runs a logger call: a logger that throws (the app's, given to `app.useLogger()`) never changes
 * what the module was doing when it logged (a commit, a callback, a statement).
 */
function quietly(log: () => void): void {
  try {
    log();
  } catch {
    // The line is lost; the outcome it was about stands.
  }
}

/**
 * A Nest `Logger` whose lines name the unit of work they were logged in: `[unit 12] …`, with the
 * app's request id when it has one (`[unit 12 req abc-1] …`, see the `requestId` option). A
 * logger that throws is ignored (see `quietly()`).
 */
class UnitLogger extends Logger {
  /** Logs `message`, tagged with the unit current here. */
  override log(message: unknown, ...rest: unknown[]): void {
    quietly(() => super.log(tagged(message, currentUnit()), ...rest));
  }

  /** Warns with `message`, tagged with the unit current here. */
  override warn(message: unknown, ...rest: unknown[]): void {
    quietly(() => super.warn(tagged(message, currentUnit()), ...rest));
  }

  /** Logs an error with `message`, tagged with the unit current here. */
  override error(message: unknown, ...rest: unknown[]): void {
    quietly(() => super.error(tagged(message, currentUnit()), ...rest));
  }

  /** Warns with `message` about `unit` (which need not be current here). */
  warnAbout(unit: LogUnit | undefined, message: string): void {
    quietly(() => super.warn(tagged(message, unit ?? currentUnit())));
  }

  /** Logs an error with `message` about `unit` (which need not be current here). */
  errorAbout(unit: LogUnit | undefined, message: string, stack?: string): void {
    quietly(() => super.error(tagged(message, unit ?? currentUnit()), stack));
  }
}

/** The one logger of the library. */
export const logger = new UnitLogger('TypeOrmContext');

/**
 * Logs an error that must not change the outcome (after-commit callbacks, cleanup), tagged with
 * `unit`, or else the unit current here.
 */
export function reportError(message: string, error: unknown, unit?: LogUnit): void {
  logger.errorAbout(unit, message, error instanceof Error ? error.stack : String(error));
}

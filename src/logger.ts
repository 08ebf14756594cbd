import { Logger } from '@nestjs/common';

/** The one logger of the library. */
export const logger = new Logger('TypeOrmContext');

/** Logs an error that must not change the outcome (after-commit callbacks, cleanup). */
export function reportError(message: string, error: unknown): void {
  logger.error(message, error instanceof Error ? error.stack : String(error));
}

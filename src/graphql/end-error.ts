import { HttpException, HttpStatus } from '@nestjs/common';
import { messages } from '../errors/messages.js';
import type { OperationResult } from './operation-unit.js';

/** A GraphQL error as a response carries it. */
export interface FormattedError {
  message: string;
  extensions: Record<string, unknown>;
}

const INTERNAL = 'INTERNAL_SERVER_ERROR';

/**
 * The error a response carries when its unit failed to end (a failed COMMIT, or what the
 * interceptor's `onError()` made of it). A `GraphQLError` (anything with `extensions`) or an
 * `HttpException` keeps its message; any other error is masked, as Nest masks a 500, since it
 * may carry the database's words (it is logged).
 */
export function formatEndError(error: unknown): FormattedError {
  if (error instanceof HttpException) {
    const code = HttpStatus[error.getStatus()] ?? INTERNAL;
    return formatted(error.message, { code });
  }
  const extensions = (error as { extensions?: unknown } | null)?.extensions;
  if (error instanceof Error && typeof extensions === 'object' && extensions !== null) {
    return formatted(error.message, { code: INTERNAL, ...extensions });
  }
  return formatted(messages.graphqlCommitFailed(), { code: INTERNAL });
}

/**
 * A formatted error that also answers `toJSON()` like a `GraphQLError`: the results of
 * subscription events still carry unformatted errors, which graphql-ws servers format that way
 * (`@nestjs/apollo`'s does).
 */
function formatted(message: string, extensions: Record<string, unknown>): FormattedError {
  const error = { message, extensions };
  Object.defineProperty(error, 'toJSON', { value: () => ({ message, extensions }) });
  return error;
}

/**
 * Makes `result` report that its unit failed to end: no data (nothing of it was committed) and
 * the error after the operation's own.
 */
export function reportEndError(result: OperationResult, error: unknown): void {
  result.data = null;
  result.errors = [...(result.errors ?? []), formatEndError(error)];
}

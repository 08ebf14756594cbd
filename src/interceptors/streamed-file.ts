import type { ExecutionContext, StreamableFile } from '@nestjs/common';
import { finished } from 'node:stream';
import { reportError } from '../context/logger.js';
import type { UnitOfWork } from '../context/unit-of-work.js';

/** The part of a Node response (Express's, or Fastify's `reply.raw`) that tells it closed. */
interface ClosableResponse {
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Ends the unit once the response body (which reads the unit's database stream) is sent, or
 * rolls back when it failed or the client went away first. A database stream of the unit that
 * fails or closes early cuts the body (`pipe()` does not pass its error on), so the client sees
 * an aborted response, never one that looks whole.
 */
export function endAfterSending(
  unit: UnitOfWork,
  file: StreamableFile,
  context: ExecutionContext,
  commit: boolean,
): void {
  const body = file.getStream();
  const cut = (error: Error) => {
    if (!body.destroyed && !body.readableEnded) body.destroy(error);
  };
  // `pipe()` does not pass a source's error on: a failed database stream cuts the body itself.
  for (const stream of unit.openStreams()) {
    finished(stream, (error) => {
      if (error) cut(error);
    });
  }
  finished(body, (error) => {
    unit
      .end(commit && !error)
      .catch((end: unknown) => reportError('Ending a streamed response failed', end));
  });
  if (context.getType() !== 'http') return;
  const response = context
    .switchToHttp()
    .getResponse<ClosableResponse & { raw?: ClosableResponse }>();
  (response.raw ?? response).once('close', () => {
    if (!body.destroyed && !body.readableEnded) body.destroy();
  });
}

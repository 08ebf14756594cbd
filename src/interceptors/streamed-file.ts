import type { ExecutionContext, StreamableFile } from '@nestjs/common';
import { finished, type Readable } from 'node:stream';
import { reportError } from '../logger.js';
import type { UnitOfWork } from '../context/unit-of-work.js';

/** The part of a Node response (Express's, or Fastify's `reply.raw`) that tells it closed. */
interface ClosableResponse {
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Whether a response body may be reading one of the unit's open database `streams`: it is one, or
 * one is being read already (piped, `pipeline()`, a `data`/`readable` listener, paused). A stream
 * nobody reads yet is not: the unit commits before the response and closes it.
 */
export function readsDatabase(body: Readable, streams: readonly Readable[]): boolean {
  for (const stream of streams) if (stream === body || stream.readableFlowing !== null) return true;
  return false;
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
    if (body.destroyed || body.readableEnded) return;
    // An error nobody listens for would crash the process: the aborted response says enough.
    body.destroy(body.listenerCount('error') > 0 ? error : undefined);
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
      .catch((end: unknown) => reportError('Ending a streamed response failed', end, unit));
  });
  if (context.getType() !== 'http') return;
  const response = context
    .switchToHttp()
    .getResponse<ClosableResponse & { raw?: ClosableResponse }>();
  (response.raw ?? response).once('close', () => {
    if (!body.destroyed && !body.readableEnded) body.destroy();
  });
}

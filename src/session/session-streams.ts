import { AsyncResource } from 'node:async_hooks';
import { finished, type Readable } from 'node:stream';
import type { Lane } from './lane.js';
import type { StreamArgs } from './session-connection.js';

/**
 * The async context of the code opening a stream, to bind the stream's events to (`bindEvents`).
 * Taken when the stream is asked for: the stream itself is made later, in a task of the lane.
 */
export function streamScope(): AsyncResource {
  return new AsyncResource('nestjs-typeorm-context.stream');
}

/**
 * Makes every event of `stream` (`data`, `readable`, `end`, `error`, `close`, and what `pipe()`
 * and `finished()` listen to) run in `scope`: the driver pushes rows from its socket's callbacks,
 * which carry the async context of whoever made the pooled connection (another request, maybe),
 * so without this a listener's `sessionContext.session()` would be that request's session.
 */
export function bindEvents<S extends Readable>(stream: S, scope: AsyncResource): S {
  const emit = stream.emit as (...args: unknown[]) => boolean;
  stream.emit = function (this: S, ...args: unknown[]) {
    return scope.runInAsyncScope(emit, this, ...args);
  } as S['emit'];
  return stream;
}

/**
 * `queryRunner.stream()`'s arguments with its `onEnd` / `onError` bound to `scope` too: TypeORM's
 * MySQL runner hands them to the driver's query object, not to the stream `bindEvents` binds.
 */
export function bindCallbacks(args: StreamArgs, scope: AsyncResource): StreamArgs {
  const bind = (callback: StreamArgs[2]) =>
    callback && scope.bind(callback as (...values: unknown[]) => unknown);
  const [sql, parameters, onEnd, onError] = args;
  return [sql, parameters, bind(onEnd), bind(onError)];
}

/**
 * The streams a session has open, with the lane each was opened on. A stream holds its lane's
 * turn until it closes, so statements queued after it wait instead of reaching a connection the
 * stream is still reading from.
 */
export class SessionStreams {
  /** Made at the first stream: most sessions never open one. */
  private open?: Map<Readable, OpenStream>;

  /** How many streams are open. */
  get size(): number {
    return this.open?.size ?? 0;
  }

  /** The streams open now. */
  list(): Readable[] {
    return this.open === undefined ? [] : [...this.open.keys()];
  }

  /** Keeps `stream` as open on `lane`; resolves when it has closed (ended, failed or destroyed). */
  hold(stream: Readable, lane: Lane): Promise<void> {
    const open = (this.open ??= new Map());
    open.set(stream, { lane, lose: losable(stream) });
    return new Promise<void>((resolve) =>
      finished(stream, () => {
        open.delete(stream);
        resolve();
      }),
    );
  }

  /** Ends the open streams with `error`: their connection is gone (see `losable`). */
  lose(error: Error): void {
    if (this.open === undefined) return;
    for (const { lose } of this.open.values()) lose(error);
  }

  /** Destroys with `error` the open streams (those whose lane `which` picks). */
  destroy(error: () => Error, which: (lane: Lane) => boolean = () => true): void {
    if (this.open === undefined) return;
    for (const [stream, { lane }] of this.open) if (which(lane)) stream.destroy(error());
  }
}

/** An open stream of a session: the lane it holds, and how to end it when its connection is lost. */
interface OpenStream {
  lane: Lane;
  lose: (error: Error) => void;
}

type Destroy = (error: Error | null, callback: (error?: Error | null) => void) => void;

/**
 * Returns what ends `stream` with `error` when its connection is gone: it destroys the stream and
 * completes the destruction at once. pg-query-stream closes its cursor on the server first and
 * waits for an answer a dead connection never gives, so otherwise no `error` or `close` ever
 * comes. (Wraps the stream's `_destroy`; the driver's own completion, if it comes first, wins.)
 */
export function losable(stream: Readable): (error: Error) => void {
  const internals = stream as unknown as { _destroy: Destroy };
  const original = internals._destroy;
  let complete: ((error?: Error | null) => void) | undefined;
  let completed = false;
  internals._destroy = function (this: Readable, error, callback) {
    complete = (outcome) => {
      if (completed) return;
      completed = true;
      callback(outcome);
    };
    original.call(this, error, complete);
  };
  return (error) => {
    stream.destroy(error);
    complete?.(error);
  };
}

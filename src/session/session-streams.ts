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
  private open?: Map<Readable, Lane>;
  /** Per open stream, what completes its destruction without the driver (see `lose`). */
  private finishers?: WeakMap<Readable, (error: Error) => void>;

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
    open.set(stream, lane);
    (this.finishers ??= new WeakMap()).set(stream, completable(stream));
    return new Promise<void>((resolve) =>
      finished(stream, () => {
        open.delete(stream);
        resolve();
      }),
    );
  }

  /**
   * Destroys the open streams with `error` (their connection is gone) and completes their
   * destruction at once: pg-query-stream closes its cursor on the server first and waits for an
   * answer a dead connection never gives, so without this no `error` or `close` ever comes.
   */
  lose(error: Error): void {
    if (this.open === undefined) return;
    for (const stream of this.open.keys()) loseStream(stream, this.finishers!.get(stream)!, error);
  }

  /** Destroys with `error` the open streams (those whose lane `which` picks). */
  destroy(error: () => Error, which: (lane: Lane) => boolean = () => true): void {
    if (this.open === undefined) return;
    for (const [stream, lane] of this.open) if (which(lane)) stream.destroy(error());
  }
}

type Destroy = (error: Error | null, callback: (error?: Error | null) => void) => void;

/**
 * Wraps `stream`'s `_destroy` so that its end can be completed from outside; returns what does it
 * (with `error`, unless the driver's own destruction completed first).
 */
export function completable(stream: Readable): (error: Error) => void {
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
  return (error) => complete?.(error);
}

/** Destroys `stream` with `error` and completes it with `finish` (see `completable`). */
export function loseStream(stream: Readable, finish: (error: Error) => void, error: Error): void {
  stream.destroy(error);
  finish(error);
}

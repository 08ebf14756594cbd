import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
  Optional,
  StreamableFile,
} from '@nestjs/common';
import { finished } from 'node:stream';
import { Observable, type Subscriber } from 'rxjs';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { reportError } from '../context/logger.js';
import { SessionRuntime } from '../context/session-runtime.js';
import { UnitOfWork } from '../context/unit-of-work.js';

/** The part of a Node response (Express's, or Fastify's `reply.raw`) that tells it closed. */
interface ClosableResponse {
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Gives each request, message or WebSocket event a unit of work: it takes over the context the
 * middleware opened (or opens one), commits every session **before** the response is sent, rolls
 * back on any error, releases every connection and ends the context. A `StreamableFile` reading
 * a database stream is the one exception: it is sent first, and the unit ends when it has been
 * read (or the client went away).
 */
@Injectable()
export class AutoCommitInterceptor implements NestInterceptor {
  /** The app's runtime (a property, so that subclasses keep their own constructors). */
  @Optional() @Inject(SessionRuntime) private readonly runtime?: SessionRuntime;

  /** Wraps the handler in the unit of work. */
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const frame = contextStorage.getStore();
    const unit = (this.runtime === undefined ? frame : frame?.ownedBy(this.runtime))?.unit;
    if (unit !== undefined && !unit.ended) {
      if (unit.claimed) return next.handle();
      unit.claimed = true;
      return this.around(unit, context, next.handle());
    }
    return new Observable((subscriber) => {
      const fresh = new UnitOfWork(undefined, this.runtime);
      fresh.claimed = true;
      return contextStorage.run(ContextFrame.forUnit(fresh, contextStorage.getStore()), () =>
        this.around(fresh, context, next.handle()).subscribe(subscriber),
      );
    });
  }

  /** Whether a handler that succeeded commits. Default: `true`. */
  protected shouldCommit(_context: ExecutionContext): boolean {
    return true;
  }

  /** Maps an error of the handler or of the commit to what the caller gets. Default: itself. */
  protected onError(error: unknown, _context: ExecutionContext): unknown {
    return error;
  }

  /**
   * Emits every value as it comes but holds back the last one until the commit is done, so the
   * response (the last value) never leaves before its writes are durable.
   */
  private around(
    unit: UnitOfWork,
    context: ExecutionContext,
    source: Observable<unknown>,
  ): Observable<unknown> {
    return new Observable((subscriber) => {
      let held: { value: unknown } | undefined;
      let settled = false;
      const subscription = source.subscribe({
        next: (value) => {
          if (held) subscriber.next(held.value);
          held = { value };
        },
        error: (error: unknown) => {
          settled = true;
          this.fail(unit, error, context, subscriber);
        },
        complete: () => {
          settled = true;
          let commit: boolean;
          try {
            commit = this.shouldCommit(context);
          } catch (error) {
            return this.fail(unit, error, context, subscriber);
          }
          const emit = () => {
            if (held) subscriber.next(held.value);
            subscriber.complete();
          };
          // A unit without sessions ends at once: answer without a promise round.
          if (unit.endIfEmpty()) return emit();
          if (held?.value instanceof StreamableFile && unit.streaming) {
            emit();
            return this.endAfterSending(unit, held.value, context, commit);
          }
          unit
            .end(commit)
            .then(emit, (error: unknown) => subscriber.error(this.mapError(error, context)));
        },
      });
      return () => {
        subscription.unsubscribe();
        if (!settled) {
          unit
            .end(false)
            .catch((error: unknown) => reportError('Rollback on unsubscribe failed', error));
        }
      };
    });
  }

  /** Rolls back, then errors with what `onError` makes of `error`. */
  private fail(
    unit: UnitOfWork,
    error: unknown,
    context: ExecutionContext,
    subscriber: Subscriber<unknown>,
  ): void {
    const fail = () => subscriber.error(this.mapError(error, context));
    if (unit.endIfEmpty()) return fail();
    unit.end(false).then(fail, (rollbackError: unknown) => {
      reportError('Rollback after a failed handler failed', rollbackError);
      fail();
    });
  }

  /** `onError()`, whose own failure becomes the error the caller gets. */
  private mapError(error: unknown, context: ExecutionContext): unknown {
    try {
      return this.onError(error, context);
    } catch (mapped) {
      return mapped;
    }
  }

  /**
   * Ends the unit once the response body (which reads the unit's database stream) is sent, or
   * rolls back when it failed or the client went away first.
   */
  private endAfterSending(
    unit: UnitOfWork,
    file: StreamableFile,
    context: ExecutionContext,
    commit: boolean,
  ): void {
    const body = file.getStream();
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
}

import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { Observable } from 'rxjs';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { reportError } from '../context/logger.js';
import { UnitOfWork } from '../context/unit-of-work.js';

/**
 * Gives each request, message or WebSocket event a unit of work: it takes over the context the
 * middleware opened (or opens one), commits every session **before** the response is sent, rolls
 * back on any error, releases every connection and ends the context.
 */
@Injectable()
export class AutoCommitInterceptor implements NestInterceptor {
  /** Wraps the handler in the unit of work. */
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const unit = contextStorage.getStore()?.unit;
    if (unit !== undefined && !unit.ended) {
      if (unit.claimed) return next.handle();
      unit.claimed = true;
      return this.around(unit, context, next.handle());
    }
    return new Observable((subscriber) => {
      const fresh = new UnitOfWork();
      fresh.claimed = true;
      return contextStorage.run(new ContextFrame(fresh), () =>
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
          const fail = () => subscriber.error(this.onError(error, context));
          // A unit without sessions ends at once: answer without a promise round.
          if (unit.endIfEmpty()) return fail();
          unit.complete(false).then(fail, (rollbackError: unknown) => {
            reportError('Rollback after a failed handler failed', rollbackError);
            fail();
          });
        },
        complete: () => {
          settled = true;
          const emit = () => {
            if (held) subscriber.next(held.value);
            subscriber.complete();
          };
          if (unit.endIfEmpty()) return emit();
          unit
            .complete(this.shouldCommit(context))
            .then(emit, (error: unknown) => subscriber.error(this.onError(error, context)));
        },
      });
      return () => {
        subscription.unsubscribe();
        if (!settled) {
          unit
            .complete(false)
            .catch((error: unknown) => reportError('Rollback on unsubscribe failed', error));
        }
      };
    });
  }
}

import { handlerName, routeOf } from './unit-route.js';
import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
  Optional,
  StreamableFile,
} from '@nestjs/common';
import {
  Observable,
  type Observer,
  type Subscriber,
  type Subscription,
  type Unsubscribable,
} from 'rxjs';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { markTransactional, runtimeOf } from '../context/instance-runtime.js';
import { type UnitKind, unitChannel } from '../diagnostics/channels.js';
import { messages } from '../errors/messages.js';
import { logger, reportError } from '../logger.js';
import { SessionRuntime } from '../context/session-runtime.js';
import { OpenBlocks } from '../context/open-blocks.js';
import { type UnitOperation, UnitOfWork } from '../context/unit-of-work.js';
import { carryRequestToken, overHttp, sendToken } from './consistency-carrier.js';
import { endAfterSending, readsDatabase } from './streamed-file.js';
import { type Batch, ValueQueue } from './value-queue.js';

const NO_VALUES: readonly unknown[] = [];
/** The last value of a handler that sent none. */
const NO_ANSWER = Symbol('no answer');
/** Nest's `SSE_METADATA`: set on the handler by `@Sse()`. */
const SSE_METADATA = '__sse__';

/**
 * Gives each request, message or WebSocket event a unit of work: it takes over the context the
 * middleware opened (or opens one), commits every session **before** the response is sent, rolls
 * back on any error, releases every connection and ends the context. Where every value of an
 * Observable is sent (`@Sse()`, a streamed microservice reply, a WebSocket gateway), each value
 * is sent once the writes made before it are committed (and no transaction block is open). A
 * `StreamableFile` reading a database stream is sent first, and the unit ends when it has been
 * read (or failed, or the client went away).
 */
@Injectable()
export class AutoCommitInterceptor implements NestInterceptor {
  /** The app's runtime (a property, so that subclasses keep their own constructors). */
  @Optional() @Inject(SessionRuntime) private readonly runtime?: SessionRuntime;
  /** Whether the warning of a GraphQL operation without a unit of its own was logged. */
  private warnedUnowned = false;
  /** How a plain HTTP handler's `Answer` ends its unit: through this interceptor (one per instance). */
  private readonly answerEnds: AnswerEnds = {
    end: (unit, context, subscriber, last) =>
      this.end(unit, context, subscriber, last === NO_ANSWER ? NO_VALUES : [last], last),
    fail: (unit, error, context, subscriber) => this.fail(unit, error, context, subscriber),
  };

  /** Wraps the handler in the unit of work. */
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    // Created with `new` (no injection): the app that recorded it at startup (`instance-runtime.ts`).
    const frame = contextStorage.getStore();
    const runtime = this.runtime ?? runtimeOf(this, frame?.runtime);
    const unit = (runtime === undefined ? frame : frame?.ownedBy(runtime))?.unit;
    if (unit !== undefined && !unit.ended) {
      if (unit.claimed) {
        // A GraphQL operation owns the unit: its resolvers join it, the first one decides.
        if (unit.operation?.joined === false) {
          this.joinOperation(unit.operation, context);
          if (unitChannel.hasSubscribers) unit.nameHandler(handlerName(context));
        }
        return next.handle();
      }
      if ((context.getType() as string) === 'graphql') {
        return this.unowned(unit, frame!, context, next, runtime);
      }
      unit.claimed = true;
      this.carryToken(unit, context);
      return this.around(unit, frame!, context, next.handle());
    }
    // A resolver that runs after its operation ended (a sibling's error nulled the result) must
    // fail on the session it uses, not write in a unit of its own.
    if (unit?.operation !== undefined) return next.handle();
    return new Observable((subscriber) => {
      // No app known (registered after app.init()): the first app that uses the unit claims it.
      const fresh = new UnitOfWork(undefined, runtime);
      fresh.claimed = true;
      fresh.setKind(context.getType<UnitKind>());
      if (fresh.kind === 'http') fresh.request = context.switchToHttp().getRequest();
      this.carryToken(fresh, context);
      const own = ContextFrame.forUnit(fresh, contextStorage.getStore());
      return contextStorage.run(own, () =>
        this.around(fresh, own, context, next.handle()).subscribe(subscriber),
      );
    });
  }

  /** Lets the operation that owns `unit` ask this interceptor whether to commit, and map errors. */
  private joinOperation(operation: UnitOperation, context: ExecutionContext): void {
    operation.join({
      shouldCommit: () => this.shouldCommit(context),
      mapError: (error) => this.mapError(error, context),
    });
  }

  /**
   * A GraphQL resolver in a unit no operation owns. The unit of `runInNewContext()` (or of any
   * opener but the middleware) stays its opener's: the resolver joins it. An HTTP request's unit
   * that no GraphQL operation took (a driver other than Apollo and Mercurius, or GraphQLModule's
   * `include` leaving TypeOrmContextModule out) is claimed by the first root resolver, as for
   * any handler, with a warning: its field resolvers then find the unit ended.
   */
  private unowned(
    unit: UnitOfWork,
    frame: ContextFrame,
    context: ExecutionContext,
    next: CallHandler,
    runtime: SessionRuntime | undefined,
  ): Observable<unknown> {
    if (!unit.forRequest) return next.handle();
    if (!this.warnedUnowned && (runtime ?? unit.runtime)?.options.graphql !== false) {
      this.warnedUnowned = true;
      logger.warn(messages.graphqlOperationUnowned(context.getClass().name));
    }
    unit.claimed = true;
    return this.around(unit, frame, context, next.handle());
  }

  /** Whether a handler that succeeded commits. Default: `true`. */
  protected shouldCommit(_context: ExecutionContext): boolean {
    return true;
  }

  /**
   * Whether the transport sends every value the handler's Observable emits (`@Sse()` routes,
   * microservice and WebSocket handlers): each is then committed and sent in turn. Plain HTTP
   * sends only the last value: the handler is one answer, committed once when it completes.
   */
  protected sendsEveryValue(context: ExecutionContext): boolean {
    const type = context.getType();
    if (type === 'http') return Reflect.getMetadata(SSE_METADATA, context.getHandler()) === true;
    return type === 'rpc' || type === 'ws';
  }

  /** Maps an error of the handler or of the commit to what the caller gets. Default: itself. */
  protected onError(error: unknown, _context: ExecutionContext): unknown {
    return error;
  }

  /**
   * Where every value is sent, sends them as they come, each once no transaction block of the
   * unit is open and the writes made before it are committed (never held for the next one), and
   * ends the unit when the source ends: a value the source completes with in the same tick (a
   * handler's one answer) goes out after the unit ended, as the response. A consumer that leaves
   * before the source ended rolls back what no value sent yet reported. Elsewhere (plain HTTP)
   * the last value is the answer, sent after the unit ended.
   */
  private around(
    unit: UnitOfWork,
    frame: ContextFrame,
    context: ExecutionContext,
    source: Observable<unknown>,
  ): Observable<unknown> {
    if (unitChannel.hasSubscribers)
      unit.nameHandler(
        `${context.getClass().name}.${context.getHandler().name}()`,
        routeOf(context),
      );
    let everyValue: boolean;
    try {
      everyValue = this.sendsEveryValue(context);
    } catch (error) {
      return new Observable((subscriber) => this.fail(unit, error, context, subscriber));
    }
    // Plain HTTP: one answer, sent once the unit ended (one object per request, no closures).
    if (!everyValue) {
      return new Observable((subscriber) =>
        new Answer(this.answerEnds, unit, context, subscriber).start(source),
      );
    }
    // Only where every value is sent do blocks count and values queue behind commits.
    const blocks = (unit.openBlocks ??= new OpenBlocks());
    return new Observable((subscriber) => {
      let done = false;
      let last: unknown;
      let commit: boolean | undefined;
      const sending = new ValueQueue();
      /** The batch values of this tick join until its commit starts. */
      let fresh: Batch | undefined;
      const failWith = (error: unknown) => {
        if (done) return;
        done = true;
        subscription?.unsubscribe(); // undefined when the source failed while subscribing
        this.fail(unit, error, context, subscriber);
      };
      const send = async (batch: Batch) => {
        if (fresh === batch) fresh = undefined;
        if (batch.taken || done) return;
        // Never split a block: its writes are committed (or not) together, after it ended.
        while (blocks.any) {
          await blocks.noneOpen();
          if (done) return;
        }
        if (!unit.streaming && !unit.settled) {
          try {
            commit ??= this.shouldCommit(context);
            await contextStorage.run(frame, () => unit.endTransactions(commit!));
          } catch (error) {
            return failWith(error);
          }
        }
        for (const value of batch.values) subscriber.next(value);
      };
      // eslint-disable-next-line prefer-const -- read by failWith, which the source may call first
      let subscription: Subscription | undefined;
      subscription = source.subscribe({
        next: (value) => {
          last = value;
          if (fresh !== undefined) return void fresh.values.push(value);
          // Nothing to commit (a database stream holds its transaction until it closes): send now.
          if (sending.idle && !blocks.any && (unit.streaming || unit.settled)) {
            return subscriber.next(value);
          }
          // The commit starts a microtask later: a completion in this tick takes the batch.
          const first = sending.idle;
          const batch: Batch = (fresh = { values: [value], taken: false, first });
          sending.add(() => send(batch));
        },
        error: (error: unknown) => {
          fresh = undefined;
          sending.add(() => failWith(error), true);
        },
        complete: () => {
          const tail = fresh;
          fresh = undefined;
          if (tail) tail.taken = true;
          const end = async () => {
            // The unit ends once no block is open, like any value's commit: never split one.
            while (blocks.any) {
              await blocks.noneOpen();
              if (done) return;
            }
            if (done) return;
            done = true;
            this.end(unit, context, subscriber, tail?.values ?? [], last, commit);
          };
          // A handler's one answer (its value and completion in one tick) ends without a wait.
          if (tail?.first) void end();
          else sending.add(end, true);
        },
      });
      return () => {
        subscription?.unsubscribe();
        if (!done) {
          done = true;
          // A value whose COMMIT was not sent yet reached no one: roll it back too.
          unit.abandonCommits();
          unit
            .end(false)
            .catch((error: unknown) => reportError('Rollback on unsubscribe failed', error, unit));
        }
      };
    });
  }

  /**
   * Ends the unit after its source completed, then sends `tail` (the values of the last tick)
   * and completes: commits first, or, for a `StreamableFile` still reading a database stream,
   * sends it and ends the unit once it has been read.
   */
  private end(
    unit: UnitOfWork,
    context: ExecutionContext,
    subscriber: Subscriber<unknown>,
    tail: readonly unknown[],
    last: unknown,
    decided?: boolean,
  ): void {
    let commit: boolean;
    try {
      commit = decided ?? this.shouldCommit(context);
    } catch (error) {
      return this.fail(unit, error, context, subscriber);
    }
    const emit = () => {
      this.sendToken(unit, context);
      for (const value of tail) subscriber.next(value);
      subscriber.complete();
    };
    // A unit without sessions ends at once: answer without a promise round.
    if (unit.endIfEmpty()) return emit();
    if (last instanceof StreamableFile) {
      // Its body may be piped from a database stream that failed: never send it as if whole.
      const failure = unit.streamFailure;
      if (failure !== undefined) {
        // Without the error: Nest listens for its body's errors only once it sends it.
        last.getStream().destroy();
        return this.fail(unit, failure, context, subscriber);
      }
      // A body reading a database stream must be sent first; unread ones close as the unit ends.
      if (unit.streaming && readsDatabase(last.getStream(), unit.openStreams())) {
        emit();
        return endAfterSending(unit, last, context, commit);
      }
    }
    unit.end(commit).then(emit, (error: unknown) => {
      this.sendToken(unit, context); // what committed before the failure (sessionContext.commit())
      subscriber.error(this.mapError(error, context));
    });
  }

  /** Rolls back, then errors with what `onError` makes of `error`. */
  private fail(
    unit: UnitOfWork,
    error: unknown,
    context: ExecutionContext,
    subscriber: Subscriber<unknown>,
  ): void {
    const fail = () => {
      this.sendToken(unit, context); // what committed before the failure (sessionContext.commit())
      subscriber.error(this.mapError(error, context));
    };
    if (unit.endIfEmpty()) return fail();
    unit.end(false).then(fail, (rollbackError: unknown) => {
      reportError('Rollback after a failed handler failed', rollbackError, unit);
      fail();
    });
  }

  /** Reads an HTTP request's consistency token into `unit` (options `consistency.header` / `cookie`). */
  private carryToken(unit: UnitOfWork, context: ExecutionContext): void {
    const options = overHttp(unit.runtime?.options.consistency);
    if (options !== undefined && context.getType() === 'http') {
      carryRequestToken(unit, context.switchToHttp().getRequest(), options);
    }
  }

  /** Sends `unit`'s consistency token on the HTTP response, once a commit moved it. */
  private sendToken(unit: UnitOfWork, context: ExecutionContext): void {
    if (!unit.advanced) return;
    const options = overHttp(unit.runtime?.options.consistency);
    if (options !== undefined && context.getType() === 'http') {
      sendToken(unit, context.switchToHttp().getResponse(), options);
    }
  }

  /** `onError()`, whose own failure becomes the error the caller gets. */
  private mapError(error: unknown, context: ExecutionContext): unknown {
    try {
      return this.onError(error, context);
    } catch (mapped) {
      return mapped;
    }
  }
}

// Recorded at startup like the instances with `@Transactional()` methods, for the app that holds it.
markTransactional(AutoCommitInterceptor.prototype);

/** What an `Answer` calls to end its unit: the interceptor's own ending (see `answerEnds`). */
interface AnswerEnds {
  /** The handler completed: ends the unit, then sends `last` (unless `NO_ANSWER`). */
  end(
    unit: UnitOfWork,
    context: ExecutionContext,
    subscriber: Subscriber<unknown>,
    last: unknown,
  ): void;
  /** The handler failed: rolls back, then errors. */
  fail(
    unit: UnitOfWork,
    error: unknown,
    context: ExecutionContext,
    subscriber: Subscriber<unknown>,
  ): void;
}

/**
 * A plain HTTP handler's subscription (the transport sends only its last value, the answer):
 * observer and teardown in one object, so that a request allocates no closures for it. Keeps the
 * last value, and on completion ends the unit before sending it; on error rolls back; a consumer
 * that leaves first (the client went away) rolls back too.
 */
class Answer implements Observer<unknown>, Unsubscribable {
  private last: unknown = NO_ANSWER;
  private done = false;
  private subscription?: Subscription;

  constructor(
    private readonly ends: AnswerEnds,
    private readonly unit: UnitOfWork,
    private readonly context: ExecutionContext,
    private readonly subscriber: Subscriber<unknown>,
  ) {}

  /** Subscribes to the handler's `source`; returns the teardown (itself). */
  start(source: Observable<unknown>): Unsubscribable {
    this.subscription = source.subscribe(this);
    return this;
  }

  next(value: unknown): void {
    this.last = value;
  }

  error(error: unknown): void {
    if (this.done) return;
    this.done = true;
    // The handler's teardown (its finalize(), inner interceptors) runs in the live unit, first.
    this.subscription?.unsubscribe(); // undefined when the source failed while subscribing
    this.ends.fail(this.unit, error, this.context, this.subscriber);
  }

  complete(): void {
    this.done = true;
    this.ends.end(this.unit, this.context, this.subscriber, this.last);
  }

  unsubscribe(): void {
    this.subscription?.unsubscribe();
    if (this.done) return;
    this.done = true;
    // A value whose COMMIT was not sent yet reached no one: roll it back too.
    this.unit.abandonCommits();
    this.unit
      .end(false)
      .catch((error: unknown) => reportError('Rollback on unsubscribe failed', error, this.unit));
  }
}

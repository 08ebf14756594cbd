import type { DataSource, QueryRunner } from 'typeorm';
import { type ConnectionMessage, releaseConnection } from '../diagnostics/channels.js';
import { type ConnectionWaits, releaseLate, type WaitOwner } from './connection-wait.js';
import type {
  ConnectionLender,
  HeldConnection,
  TransactionStatements,
} from './pooled-connection.js';
import type { ReplicaPools } from './replica-pools.js';
import { writerOf } from './sqlite-writer.js';

/** A pg client, as far as TypeORM's `query()` uses it. */
interface RawClient {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** Arguments of `QueryRunner.query()` and `QueryRunner.stream()`. */
export type QueryArgs = Parameters<QueryRunner['query']>;
export type StreamArgs = Parameters<QueryRunner['stream']>;

/**
 * Where a test transaction keeps a data source's own `createQueryRunner` while it runs (the test
 * body's runners share the test's connection; sessions take theirs here). Set only then.
 */
export const CREATE_RUNNER = Symbol('nestjs-typeorm-context.createQueryRunner');

/** QueryRunner members TypeORM keeps protected or read-only that the session drives. */
type RunnerInternals = Omit<QueryRunner, 'isTransactionActive'> & {
  isTransactionActive: boolean;
  transactionDepth: number;
  databaseConnection: unknown;
  databaseConnectionPromise: unknown;
};

/** The TypeORM events of a transaction's life, as `Broadcaster.broadcast()` names them. */
export type TransactionEvent =
  | 'BeforeTransactionStart'
  | 'AfterTransactionStart'
  | 'BeforeTransactionCommit'
  | 'AfterTransactionCommit'
  | 'BeforeTransactionRollback'
  | 'AfterTransactionRollback';

/**
 * One session's QueryRunner at the wire level. It takes a pooled connection itself (within a
 * timeout, with an `'error'` listener from the first moment), lends it to the runner while a
 * transaction is open, and gives it back or has the pool drop it. `LazySession` decides when;
 * this does it, and owns the connection: nothing else releases it.
 */
export class SessionConnection implements WaitOwner {
  /** The runner, whose methods the session replaces. */
  readonly runner: RunnerInternals & QueryRunner;
  /** TypeORM's own `query()` and `stream()` of the runner. */
  private readonly sendQuery: QueryRunner['query'];
  private readonly sendStream: QueryRunner['stream'];
  private pooled?: HeldConnection;
  /** True while a connection is on its way from the pool. */
  acquiring = false;
  /** Ends the wait for a full pool under way (see `ConnectionWaits.within`). */
  stopWait?: () => void;
  /** True once `stopAcquiring()` was called during this acquire: no wait starts any more. */
  waitStopped = false;
  /** True while the held connection is a replica's. */
  onReplica = false;

  constructor(
    private readonly dataSource: DataSource,
    /** Called when the driver reports the held connection broken. */
    private readonly lost: (error: Error) => void,
    /** The app's waits, which bound a wait for a full pool. */
    private readonly waits: ConnectionWaits,
  ) {
    // TypeORM's own factory, also while a test transaction has the data source's one replaced.
    const create = (
      dataSource as Partial<Record<typeof CREATE_RUNNER, DataSource['createQueryRunner']>>
    )[CREATE_RUNNER];
    // SQLite: a runner of the driver's class that takes no turn of its own (the session takes it).
    const runner = (writerOf(dataSource)?.ownRunner(dataSource) ??
      (create ?? dataSource.createQueryRunner).call(
        dataSource,
        'master',
      )) as unknown as RunnerInternals;
    this.runner = runner as RunnerInternals & QueryRunner;
    this.sendQuery = runner.query;
    this.sendStream = runner.stream;
  }

  /** Whether a pooled connection is held right now. */
  get held(): boolean {
    return this.pooled !== undefined;
  }

  /** Whether the server says the open transaction failed (pg clients that tell it). */
  get failedOnServer(): boolean {
    const raw = this.pooled?.raw as { getTransactionStatus?: () => string | null } | undefined;
    return raw?.getTransactionStatus?.() === 'E';
  }

  /**
   * Whether anyone subscribed to TypeORM's events of this data source: the session's BEGIN,
   * COMMIT and ROLLBACK check it before awaiting an event, so without subscribers they pay no
   * promise turn per event.
   */
  get observed(): boolean {
    return this.dataSource.subscribers.length > 0;
  }

  /**
   * Takes a pooled connection: at once when the pool has room, else waiting at most `ms`.
   * Resolves `false` on timeout; a connection that arrives later goes back to the pool. A
   * connection the server dropped before it was used (an outage) is dropped and another taken.
   * With `replicas` (see `connection-route.ts`), a replica's first; the primary's when none answers.
   */
  async acquire(
    ms: number,
    lender?: ConnectionLender,
    session?: unknown,
    frame?: unknown,
    replicas?: ReplicaPools,
    /** The primary WAL position the replica must have replayed (the unit's consistency token). */
    need?: bigint,
  ): Promise<boolean> {
    this.acquiring = true;
    try {
      if (replicas) {
        const taken = await replicas.take(ms, need, this);
        if (taken === 'busy') return false;
        if (typeof taken !== 'string') {
          this.lend(taken);
          this.onReplica = true;
          return true;
        }
      }
      if (lender) {
        const lent = await this.waits.within(lender.lend(session, frame), ms, releaseLate, this);
        if (lent === undefined) return false;
        this.lend(lent);
        return true;
      }
      for (let attempt = 1; ; attempt++) {
        const pooled = await this.waits.take(this.dataSource, ms, this);
        if (pooled === undefined) return false;
        if (pooled.failure === undefined) {
          this.lend(pooled);
          return true;
        }
        await pooled.destroy(pooled.failure);
        if (attempt === 3) throw pooled.failure;
      }
    } finally {
      this.acquiring = false;
      this.waitStopped = false;
      this.stopWait = undefined;
    }
  }

  /**
   * Gives up the acquire under way, if any, as its timeout would (it resolves `false`): the
   * session ended and wants no connection. One that arrives later goes back to the pool.
   */
  stopAcquiring(): void {
    if (!this.acquiring) return;
    this.waitStopped = true;
    this.stopWait?.();
  }

  /**
   * True while TypeORM's own `query()` / `stream()` runs its synchronous start, in which it calls
   * `runner.connect()`: that call comes from the statement being sent, never from a user.
   */
  sending = false;

  /** Runs a statement through TypeORM (its logging and query events) on the held connection. */
  query(args: QueryArgs | StreamArgs): Promise<unknown> {
    return this.send(
      () => this.sendQuery.apply(this.runner, args as QueryArgs) as Promise<unknown>,
    );
  }

  /** Opens a TypeORM stream on the held connection. */
  stream(args: StreamArgs): ReturnType<QueryRunner['stream']> {
    return this.send(() => this.sendStream.apply(this.runner, args));
  }

  /** Sends one of the session's own statements (BEGIN, SAVEPOINT, COMMIT...). */
  exec(sql: string): Promise<unknown> {
    return this.send(() => this.sendQuery.call(this.runner, sql) as Promise<unknown>);
  }

  /**
   * Runs `send` (which sends `sql` through TypeORM, with its logging and query events) and
   * resolves with the driver's raw result of `sql`, which TypeORM's `query()` does not return for
   * a message of several statements (pg hands an array of results).
   */
  async capture(sql: string, send: () => Promise<unknown>): Promise<unknown> {
    const raw = this.pooled?.raw as unknown as RawClient | undefined;
    if (raw === undefined) return send();
    let result: unknown;
    const capturing: RawClient = {
      query: async (text, values) => {
        const answer = await raw.query(text, values);
        if (text === sql) result = answer;
        return answer;
      },
    };
    this.runner.databaseConnection = capturing;
    try {
      await send();
    } finally {
      if (this.runner.databaseConnection === capturing) this.runner.databaseConnection = raw;
    }
    return result;
  }

  /** How transactions begin and end on the held connection, when it is not the usual way. */
  get statements(): TransactionStatements | undefined {
    return this.pooled?.statements;
  }

  /** Statements of this session in the hands of a shared connection's `send` right now. */
  private running = 0;

  private send<T>(call: () => Promise<T>): Promise<T> {
    const held = this.pooled;
    // A statement sent while another of this session runs on a shared connection is part of it
    // (a subscriber queries in that statement's events): it must not queue behind it there.
    if (held?.send === undefined) return this.sendNow(call);
    if (this.running > 0)
      return held.inline ? held.inline(() => this.sendNow(call)) : this.sendNow(call);
    return held.send(async () => {
      this.running += 1;
      try {
        return await this.sendNow(call);
      } finally {
        this.running -= 1;
      }
    });
  }

  private sendNow<T>(call: () => Promise<T>): Promise<T> {
    this.sending = true;
    try {
      return call();
    } finally {
      this.sending = false;
    }
  }

  /** Broadcasts one of TypeORM's transaction events to the data source's subscribers. */
  broadcast(event: TransactionEvent): Promise<void> {
    return this.runner.broadcaster.broadcast(event);
  }

  /** Gives the held connection back to the pool. */
  release(): void {
    this.reclaim()?.release();
  }

  /** Has the pool drop the held connection: its state is unknown. */
  destroy(error: unknown): Promise<void> {
    const pooled = this.reclaim();
    return pooled ? pooled.destroy(asError(error)) : Promise.resolve();
  }

  private readonly onError = (error: Error): void => {
    if (this.pooled) this.lost(error);
  };

  private lend(pooled: HeldConnection): void {
    this.pooled = pooled;
    pooled.onError = this.onError;
    this.runner.databaseConnection = pooled.raw;
    this.runner.databaseConnectionPromise = undefined;
  }

  /** Publishes on the release channel when the connection taken now is given back. */
  trace(message: ConnectionMessage): void {
    this.traced = message;
    this.tracedSince = performance.now();
  }

  private traced?: ConnectionMessage;
  private tracedSince = 0;

  private reclaim(): HeldConnection | undefined {
    const pooled = this.pooled;
    if (pooled === undefined) return undefined;
    this.pooled = undefined;
    const traced = this.traced;
    if (traced !== undefined) {
      this.traced = undefined;
      releaseConnection(traced, this.tracedSince);
    }
    this.onReplica = false;
    pooled.onError = undefined;
    this.runner.databaseConnection = undefined;
    this.runner.databaseConnectionPromise = undefined;
    this.runner.transactionDepth = 0;
    return pooled;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

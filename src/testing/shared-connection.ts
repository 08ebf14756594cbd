import type { QueryRunner } from 'typeorm';
import type { ContextFrame } from '../context/context-frame.js';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { messages } from '../errors/messages.js';
import { TestTransactionError } from '../errors/test-transaction.error.js';
import { type ConnectionWaits, releaseLate } from '../session/connection-wait.js';
import { Lane } from '../session/lane.js';
import { endedTransaction, rolledBackByServer } from '../session/transaction-dialect.js';
import type { LazySession } from '../session/lazy-session.js';
import type {
  ConnectionLender,
  DriverConnection,
  HeldConnection,
  TransactionStatements,
} from '../session/pooled-connection.js';

/** One transaction's share of the test connection: a SAVEPOINT, released or rolled back to. */
export class Lease implements HeldConnection {
  /** Receives the driver's errors (none reach a lease: the test owns the connection). */
  onError?: (error: Error) => void;
  readonly statements: TransactionStatements;

  constructor(
    private readonly shared: SharedConnection,
    /** The session whose transaction this is; none for a runner of the test body. */
    readonly session: LazySession | undefined,
    /** The savepoint's name. */
    readonly name: string,
  ) {
    this.statements = {
      begin: [`SAVEPOINT ${name}`],
      commit: `RELEASE SAVEPOINT ${name}`,
      rollback: `ROLLBACK TO SAVEPOINT ${name}`,
      savepoint: name,
    };
  }

  /** The test's connection. */
  get raw(): DriverConnection {
    return this.shared.raw;
  }

  /** Ends the share: the next transaction waiting for the connection gets it. */
  release(): void {
    this.shared.release(this);
  }

  /** A share whose state is unknown (a timeout): rolled back to its savepoint, then ended. */
  async destroy(): Promise<void> {
    await this.shared.exec(this, this.statements.rollback).catch(() => undefined);
    this.release();
  }

  /** Sends a statement when this share's turn has come. */
  send<T>(call: () => Promise<T>): Promise<T> {
    return this.shared.send(this, call);
  }

  /** Sends at once a statement that is part of one running (a subscriber's, from its events). */
  inline<T>(call: () => Promise<T>): Promise<T> {
    return this.shared.inline(call);
  }
}

/** A wait for the connection: its condition, what to do once it holds, and if it never will. */
interface Waiter {
  ready(): boolean;
  go(): void;
  fail(error: Error): void;
}

/**
 * The one connection a `TestTransaction` holds for a data source, on which every transaction of
 * the app takes its turn as a SAVEPOINT of the test's transaction. Owns who may send on it:
 *
 * - transactions are stacked: one that begins inside the code of the transaction on top (a
 *   REQUIRES_NEW block, a factory session, `runInNewContext()` called from a request, the
 *   statements of a NOT_SUPPORTED block that suspends it) nests in it; any other (another request, the test body's own queries) waits until nothing holds it;
 * - a statement runs when its transaction is on top (the body's, when nothing holds it), one at
 *   a time, in order;
 * - once the test transaction ended, nothing more runs on it: what waits and what comes later
 *   fails with the `TestTransactionError` of `end()`. So it does once the server rolled the
 *   whole transaction back (MySQL/MariaDB after a deadlock, savepoints included), or says a
 *   statement ended it (MySQL/MariaDB commit it implicitly at DDL and `TRUNCATE`; that statement
 *   fails too): the connection is then in autocommit mode, where every statement would commit
 *   for real. A subscriber's statement, sent at once from another's events (`inline()`), counts.
 */
export class SharedConnection implements ConnectionLender {
  private readonly holders: Lease[] = [];
  private waiting: Waiter[] = [];
  private readonly wire = new Lane();
  private count = 0;
  /** Set once the test transaction ended: the error of everything sent later. */
  private refusal?: () => Error;

  constructor(
    /** The test's own runner, holding the connection in the test's transaction. */
    readonly runner: QueryRunner,
    /** The driver's connection. */
    readonly raw: DriverConnection,
    private readonly prefix: string,
    /** The data source's name, for messages. */
    private readonly dataSource: string,
    /** How long a runner of the test body waits for the connection (the module's acquireTimeout), on the app's timer. */
    private readonly bodyWait: { ms: number; waits: ConnectionWaits },
    /** The data source's driver type (`postgres`, `mariadb`...). */
    readonly type: string,
  ) {}

  /** Whether a transaction holds the connection or anything waits for it. */
  get busy(): boolean {
    return this.holders.length > 0 || this.waiting.length > 0 || this.wire.busy;
  }

  /** A share for the transaction `session` begins in `frame`, when its turn has come. */
  lend(session: unknown, frame: unknown): Promise<Lease> {
    const owner = session as LazySession | undefined;
    const fits = () => {
      const top = this.holders.at(-1);
      if (top === undefined) return true;
      const inside = frame as ContextFrame | undefined;
      return top.session !== undefined && inside?.runsInside(top.session) === true;
    };
    return new Promise((resolve, reject) =>
      this.wait(
        fits,
        () => {
          const lease = new Lease(this, owner, `${this.prefix}_${++this.count}`);
          this.holders.push(lease);
          resolve(lease);
        },
        reject,
      ),
    );
  }

  /**
   * A share for a runner of the test body (plain TypeORM: the `DataSource`'s own queries), once
   * nothing holds the connection: within `acquireTimeout`, since what holds it may be waiting for
   * this very query (plain TypeORM inside a unit of work, or in a callback of one). A runner of a
   * NOT_SUPPORTED block (`suspended`: the frame of the transaction it suspends) also gets it while
   * that transaction holds it, on top of it (it waits for the block).
   */
  async lendToBody(suspended?: ContextFrame): Promise<Lease> {
    const { ms, waits } = this.bodyWait;
    const lease = await waits.within(this.lend(undefined, suspended), ms, releaseLate);
    if (lease !== undefined) return lease;
    throw new ConnectionAcquireTimeoutError(
      suspended
        ? messages.testConnectionBusyNotSupported(this.dataSource, ms)
        : messages.testConnectionBusyPlain(this.dataSource, ms),
    );
  }

  /** The test transaction ended: what waits fails with `refusal()`'s error, and so does what comes later. */
  end(refusal: () => Error): void {
    this.refusal = refusal;
    const waiting = this.waiting;
    this.waiting = [];
    for (const waiter of waiting) waiter.fail(refusal());
  }

  /** Ends `lease`'s share of the connection. */
  release(lease: Lease): void {
    const index = this.holders.lastIndexOf(lease);
    if (index >= 0) this.holders.splice(index, 1);
    this.pulse();
  }

  /** Sends `call` on the connection when `lease` is on top (no lease: when nothing holds it). */
  send<T>(lease: Lease | undefined, call: () => Promise<T>): Promise<T> {
    const turn = () =>
      lease === undefined ? this.holders.length === 0 : this.holders.at(-1) === lease;
    return new Promise<T>((resolve, reject) =>
      // The statement takes its place on the wire the moment its turn comes.
      this.wait(
        turn,
        () => this.wire.run(call).then(this.answered(resolve, reject), this.failed(reject)),
        reject,
      ),
    );
  }

  /**
   * Sends at once a statement that is part of one running on the connection (a subscriber's,
   * sent from that statement's query events: queued behind it, it would never run); what the
   * server says of the transaction is noted as for any other.
   */
  inline<T>(call: () => Promise<T>): Promise<T> {
    if (this.refusal) return Promise.reject(this.refusal());
    return new Promise<T>((resolve, reject) =>
      call().then(this.answered(resolve, reject), this.failed(reject)),
    );
  }

  /**
   * Resolves with a statement's result, unless the server says it ended the test's transaction
   * (MySQL/MariaDB: an implicit commit at DDL): then the test transaction ends, and the
   * statement fails with the error everything later gets.
   */
  private answered<T>(resolve: (value: T) => void, reject: (error: unknown) => void) {
    return (result: T) => {
      if (this.refusal || !endedTransaction(this.type, result)) return resolve(result);
      const name = this.dataSource;
      this.end(() => new TestTransactionError(messages.testImplicitCommit(name)));
      reject(this.refusal!());
    };
  }

  /** One of the kit's own statements, in `lease`'s turn. */
  exec(lease: Lease | undefined, sql: string): Promise<unknown> {
    return this.send(lease, () => this.runner.query(sql) as Promise<unknown>);
  }

  /** Rejects with a statement's error, after ending the test transaction if the server did. */
  private failed(reject: (error: unknown) => void): (error: unknown) => void {
    return (error) => {
      if (!this.refusal && rolledBackByServer(this.type, error)) {
        const name = this.dataSource;
        this.end(() => new TestTransactionError(messages.testRolledBackByServer(name)));
      }
      reject(error);
    };
  }

  private wait(ready: () => boolean, go: () => void, fail: (error: Error) => void): void {
    if (this.refusal) fail(this.refusal());
    else if (ready()) go();
    else this.waiting.push({ ready, go, fail });
  }

  /** Lets every waiter whose turn has come go, in order; a new holder changes whose turn it is. */
  private pulse(): void {
    for (let changed = true; changed;) {
      changed = false;
      for (const waiter of this.waiting) {
        if (!waiter.ready()) continue;
        this.waiting = this.waiting.filter((other) => other !== waiter);
        const holders = this.holders.length;
        waiter.go();
        if (this.holders.length !== holders) {
          changed = true;
          break;
        }
      }
    }
  }
}

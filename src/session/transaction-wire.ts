import type { DataSource, QueryRunner } from 'typeorm';
import { OUTSIDE } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { ConnectionAcquireTimeoutError } from '../errors/connection-acquire-timeout.error.js';
import { messages } from '../errors/messages.js';
import { ModuleNotInitializedError } from '../errors/module-not-initialized.error.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import type { IsolationLevel } from '../interfaces/transaction-options.interface.js';
import { DEFAULT_ACQUIRE_TIMEOUT } from '../typeorm-context.options.js';
import { Block } from './block.js';
import { Lane } from './lane.js';
import type { LazySession } from './lazy-session.js';
import {
  type QueryArgs,
  SessionConnection,
  type StreamArgs,
  type TransactionEvent,
} from './session-connection.js';
import type { SessionHooks } from './session-hooks.js';
import {
  abortsTransaction,
  type BeginOptions,
  beginStatements,
  poolSize,
  rolledBackByServer,
} from './transaction-dialect.js';

const RESOLVED = Promise.resolve();

/**
 * The statements of one session's transactions, in the order TypeORM itself sends them: take a
 * connection, BEGIN, SAVEPOINT, RELEASE / ROLLBACK TO, COMMIT / ROLLBACK, give the connection
 * back, each wrapped in TypeORM's transaction events, plus the module hooks. `LazySession`
 * decides when (each call runs inside a task of one of its lanes); this knows how. What a hook
 * or a subscriber sends from inside runs as a step: on a lane of its own, so it never waits for
 * the task it belongs to.
 */
export class TransactionWire {
  /** True while a transaction is open on the server. */
  open = false;
  private readonly connection: SessionConnection;
  private readonly type: string;
  private readonly beginSql: string[];

  constructor(
    private readonly session: LazySession,
    private readonly dataSource: DataSource,
    private readonly hooks: SessionHooks,
    begin: BeginOptions,
    /** The error of a use after the session ended, if it ended. */
    private readonly ended: () => Error | undefined,
    /** Called when the driver reports the connection broken while a transaction was open. */
    private readonly lost: (error: Error) => void,
  ) {
    this.connection = new SessionConnection(dataSource, (error) => this.lose(error));
    this.type = dataSource.options.type;
    // The data source's own `isolationLevel` (TypeORM 1.x) applies unless the session sets one.
    const isolationLevel =
      begin.isolationLevel ??
      (dataSource.options as { isolationLevel?: IsolationLevel }).isolationLevel;
    this.beginSql = beginStatements(this.type, { ...begin, isolationLevel });
  }

  /** The session's QueryRunner. */
  get runner(): QueryRunner & { transactionDepth: number } {
    return this.connection.runner;
  }

  /** Whether a pooled connection is held right now. */
  get held(): boolean {
    return this.connection.held;
  }

  /** The driver's connection the runner uses, while one is held. */
  get driverConnection(): unknown {
    return this.connection.runner.databaseConnection;
  }

  /** Whether a connection is on its way from the pool. */
  get acquiring(): boolean {
    return this.connection.acquiring;
  }

  /** A user's statement in `block`, refused once the session ended or the server rolled back. */
  send(args: QueryArgs, block: Block): Promise<unknown> {
    const refusal = this.refusal(block);
    return refusal ? Promise.reject(refusal) : this.connection.query(args);
  }

  /** A user's stream in `block`, refused like a statement. */
  stream(args: StreamArgs, block: Block): ReturnType<QueryRunner['stream']> {
    const refusal = this.refusal(block);
    return refusal ? Promise.reject(refusal) : this.connection.stream(args);
  }

  /** Notes what a failed statement of `block` did to the transaction on the server. */
  failed(block: Block, error: unknown): void {
    if (!this.open || !abortsTransaction(this.type, error)) return;
    if (rolledBackByServer(this.type, error)) block.root.broken ??= error;
    else block.aborted ??= error;
  }

  /** Takes a connection and begins a transaction: BEGIN, TypeORM's start events, `onSessionStart`. */
  async begin(lane: Lane, block: Block): Promise<void> {
    await this.take();
    try {
      await this.event(lane, block, 'BeforeTransactionStart');
      for (const sql of this.beginSql) await this.exec(sql);
      this.open = true;
      this.connection.runner.transactionDepth = 1;
      await this.event(lane, block, 'AfterTransactionStart');
      const hook = this.hooks.onSessionStart;
      if (hook) await this.step(lane, block, () => hook(this.runner.manager, this.name));
    } catch (error) {
      await this.abandon(error);
      throw error;
    }
  }

  /** Commits `block` (after `beforeCommit`) and gives the connection back. */
  async commit(block: Block): Promise<void> {
    const broken = block.broken;
    if (!this.open && broken === undefined) return;
    const lane = this.session.lane;
    const hook = this.hooks.beforeCommit;
    if (hook && broken === undefined) {
      try {
        await this.step(lane, block, () => hook(this.runner.manager, this.name));
      } catch (error) {
        await this.rollback(block).catch(this.reportRollback);
        throw error;
      }
    }
    const aborted = block.aborted ?? block.broken;
    if (aborted !== undefined || this.connection.failedOnServer) {
      await this.rollback(block).catch(this.reportRollback);
      throw new TransactionAbortedError(messages.transactionAborted(this.name, false), {
        cause: aborted,
      });
    }
    try {
      await this.event(lane, block, 'BeforeTransactionCommit');
      await this.exec('COMMIT');
    } catch (error) {
      await this.rollback(block).catch(() => undefined);
      throw error;
    }
    this.open = false;
    try {
      await this.event(lane, block, 'AfterTransactionCommit');
    } finally {
      this.connection.release();
    }
  }

  /** Rolls `block` back and gives the connection back (or has the pool drop a broken one). */
  async rollback(block: Block): Promise<void> {
    if (!this.open) return;
    const lane = this.session.lane;
    try {
      await this.event(lane, block, 'BeforeTransactionRollback');
      await this.exec('ROLLBACK');
    } catch (error) {
      this.open = false;
      await this.connection.destroy(error);
      throw error;
    }
    this.open = false;
    try {
      await this.event(lane, block, 'AfterTransactionRollback');
    } finally {
      this.connection.release();
    }
  }

  /** Opens a SAVEPOINT inside `parent`, for work issued on `lane`. */
  async openSavepoint(lane: Lane, parent: Block): Promise<Block> {
    const refusal = this.refusal(parent);
    if (refusal) throw refusal;
    const block = new Block(parent, lane, `typeorm_${this.runner.transactionDepth}`);
    await this.event(lane, parent, 'BeforeTransactionStart');
    await this.exec(`SAVEPOINT ${block.savepoint}`);
    this.runner.transactionDepth += 1;
    try {
      await this.event(lane, block, 'AfterTransactionStart');
    } catch (error) {
      await this.endSavepoint(block, false);
      throw error;
    }
    return block;
  }

  /**
   * Ends a savepoint once the work queued in it ran: released when `keep` and nothing spoiled it
   * (its callbacks then wait for the enclosing transaction), else rolled back to. Throws when a
   * kept block had to be rolled back (rollback-only, or aborted on the server).
   */
  async endSavepoint(block: Block, keep: boolean): Promise<void> {
    const lane = block.lane!;
    const parent = block.parent!;
    await lane.close();
    let failure: unknown;
    if (keep) {
      failure = this.spoiled(block);
      if (failure === undefined) {
        let released = false;
        try {
          await this.event(lane.parent!, block, 'BeforeTransactionCommit');
          await this.exec(`RELEASE SAVEPOINT ${block.savepoint}`);
          released = true;
          this.runner.transactionDepth -= 1;
          parent.callbacks.adopt(block.callbacks);
          await this.event(lane.parent!, parent, 'AfterTransactionCommit');
          return;
        } catch (error) {
          if (released) throw error;
          failure = error;
        }
      }
    }
    await this.rollbackToSavepoint(block);
    if (failure !== undefined) throw failure;
  }

  /** Drops the connection at once (the server rolls back); used by a timeout. */
  drop(error: Error): void {
    this.open = false;
    void this.connection.destroy(error);
  }

  /** Reports an error that must not change the outcome. */
  report(message: string, error: unknown): void {
    this.hooks.reportError(message, error);
  }

  /** Broadcasts a TypeORM transaction event, when anyone listens, as a step of the running task. */
  private event(lane: Lane, block: Block, event: TransactionEvent): Promise<void> {
    if (!this.connection.observed) return RESOLVED;
    return this.step(lane, block, () => this.connection.broadcast(event));
  }

  /** Runs `work` as part of the task running on `parent`: its own work goes to a lane of its own. */
  private async step<T>(parent: Lane, block: Block, work: () => Promise<T> | T): Promise<T> {
    const lane = new Lane(parent, block);
    const frame = (contextStorage.getStore() ?? OUTSIDE).within(this.session, lane);
    try {
      return await contextStorage.run(frame, work);
    } finally {
      await lane.close();
    }
  }

  private async rollbackToSavepoint(block: Block): Promise<void> {
    const lane = block.lane!.parent!;
    const parent = block.parent!;
    // As in TypeORM's manager.transaction(), errors of the rollback never replace the block's own.
    await this.event(lane, block, 'BeforeTransactionRollback').catch(() => undefined);
    try {
      await this.exec(`ROLLBACK TO SAVEPOINT ${block.savepoint}`);
    } catch (error) {
      // The transaction is in a state nobody knows: it must not commit.
      parent.root.broken ??= error;
      return;
    } finally {
      this.runner.transactionDepth -= 1;
    }
    await this.event(lane, parent, 'AfterTransactionRollback').catch(() => undefined);
  }

  /** Why `block` must not be kept, if anything spoiled it. */
  private spoiled(block: Block): Error | undefined {
    if (block.rollbackOnly) return new RollbackOnlyError(messages.rollbackOnly(this.name));
    const aborted = block.aborted ?? block.root.broken;
    if (aborted === undefined) return undefined;
    return new TransactionAbortedError(messages.transactionAborted(this.name, true), {
      cause: aborted,
    });
  }

  /** Takes a pooled connection within `acquireTimeout`; gives it back if the session ended meanwhile. */
  private async take(): Promise<void> {
    if (!this.dataSource.isInitialized) throw new ModuleNotInitializedError(messages.shutDown());
    const ms = this.hooks.acquireTimeout ?? DEFAULT_ACQUIRE_TIMEOUT;
    if (!(await this.connection.acquire(ms))) {
      const held = contextStorage.getStore()?.unit?.connectionsHeld(this.name) ?? 0;
      throw new ConnectionAcquireTimeoutError(
        messages.acquireTimeout(this.name, ms, poolSize(this.dataSource), held),
      );
    }
    const ended = this.ended();
    if (ended === undefined) return;
    this.connection.release();
    throw ended;
  }

  /** After a failed BEGIN or start hook: a quiet ROLLBACK, or the connection dropped. */
  private async abandon(error: unknown): Promise<void> {
    const open = this.open;
    this.open = false;
    if (open) {
      try {
        await this.exec('ROLLBACK');
        this.connection.release();
        return;
      } catch {
        // broken: drop it below
      }
    }
    await this.connection.destroy(error);
  }

  private lose(error: Error): void {
    if (this.open) this.lost(error);
    this.open = false;
    void this.connection.destroy(error);
  }

  private refusal(block: Block): Error | undefined {
    const ended = this.ended();
    if (ended !== undefined) return ended;
    const broken = block.root.broken;
    if (broken === undefined) return undefined;
    return new TransactionAbortedError(messages.transactionAborted(this.name, false), {
      cause: broken,
    });
  }

  private exec(sql: string): Promise<unknown> {
    if (this.connection.held) return this.connection.exec(sql);
    return Promise.reject(this.ended() ?? new Error(`No connection for ${sql}`));
  }

  private readonly reportRollback = (error: unknown): void =>
    this.report(`Rollback of '${this.name}' failed`, error);

  private get name(): string {
    return this.session.dataSourceName;
  }
}

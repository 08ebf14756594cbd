import { messages } from '../errors/messages.js';
import { RollbackOnlyError } from '../errors/rollback-only.error.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { Block } from './block.js';
import type { Lane } from './lane.js';
import type { SessionSteps } from './session-steps.js';
import type { TransactionWire } from './transaction-wire.js';

/**
 * SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT of one session, in TypeORM's events and
 * with TypeORM's names (`typeorm_<depth>`). Savepoints of a session are opened one at a time
 * (a block holds its parent's lane while it runs), so a name is never in use twice.
 */
export class Savepoints {
  constructor(
    private readonly wire: TransactionWire,
    private readonly steps: SessionSteps,
  ) {}

  /** Opens a SAVEPOINT inside `parent`, for work issued on `lane`. */
  async open(lane: Lane, parent: Block): Promise<Block> {
    const refusal = this.wire.refusal(parent);
    if (refusal) throw refusal;
    const runner = this.wire.runner;
    const block = new Block(parent, lane, this.wire.savepointName(runner.transactionDepth));
    await this.steps.event(lane, parent, 'BeforeTransactionStart');
    await this.send(`SAVEPOINT ${block.savepoint}`, lane, block);
    runner.transactionDepth += 1;
    try {
      await this.steps.event(lane, block, 'AfterTransactionStart');
    } catch (error) {
      await this.end(block, false);
      throw error;
    }
    return block;
  }

  /**
   * Ends a savepoint once the work queued in it ran: released when `keep` and nothing spoiled it
   * (its callbacks then wait for the enclosing transaction), else rolled back to. Throws when a
   * kept block had to be rolled back (rollback-only, or aborted on the server).
   */
  async end(block: Block, keep: boolean): Promise<void> {
    const lane = block.lane!;
    await lane.close();
    let failure = keep ? this.spoiled(block) : undefined;
    if (keep && failure === undefined) {
      let released = false;
      try {
        await this.steps.event(lane.parent!, block, 'BeforeTransactionCommit');
        await this.send(`RELEASE SAVEPOINT ${block.savepoint}`, lane.parent!, block.parent!);
        released = true;
        this.wire.runner.transactionDepth -= 1;
        block.parent!.callbacks.adopt(block.callbacks);
        await this.steps.event(lane.parent!, block.parent!, 'AfterTransactionCommit');
        return;
      } catch (error) {
        if (released) throw error;
        failure = error as Error;
      }
    }
    await this.rollbackTo(block);
    if (failure !== undefined) throw failure;
  }

  private async rollbackTo(block: Block): Promise<void> {
    const lane = block.lane!.parent!;
    const parent = block.parent!;
    // As in TypeORM's manager.transaction(), errors of the rollback never replace the block's own.
    await this.steps.event(lane, block, 'BeforeTransactionRollback').catch(() => undefined);
    try {
      await this.wire.exec(`ROLLBACK TO SAVEPOINT ${block.savepoint}`, lane, parent);
    } catch (error) {
      // A lost connection fails the transaction with ConnectionLostError (the server rolled it
      // back); else the transaction is in a state nobody knows: it must not commit.
      this.wire.failed(parent, error);
      parent.root.broken ??= new TransactionAbortedError(
        messages.transactionAborted(this.wire.name, false),
        { cause: error },
      );
      return;
    } finally {
      this.wire.runner.transactionDepth -= 1;
      parent.callbacks.adoptRolledBack(block.callbacks);
    }
    await this.steps.event(lane, parent, 'AfterTransactionRollback').catch(() => undefined);
  }

  /**
   * Sends a savepoint statement of `block`'s transaction; one that is the first to meet a lost
   * connection fails with `ConnectionLostError`, as the session's other statements do.
   */
  private async send(sql: string, lane: Lane, block: Block): Promise<void> {
    try {
      await this.wire.exec(sql, lane, block);
    } catch (error) {
      throw this.wire.failed(block, error) ?? error;
    }
  }

  /** Why `block` must not be kept, if anything spoiled it. */
  private spoiled(block: Block): Error | undefined {
    const name = this.wire.name;
    if (block.rollbackOnly) return new RollbackOnlyError(messages.rollbackOnly(name));
    const aborted = block.aborted ?? block.root.broken;
    if (aborted === undefined) return undefined;
    return new TransactionAbortedError(messages.transactionAborted(name, true), { cause: aborted });
  }
}

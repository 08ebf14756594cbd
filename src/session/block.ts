import { Lane } from './lane.js';
import { TransactionCallbacks } from './transaction-callbacks.js';

/**
 * A transaction or one of its savepoints, and what the work inside it owns: its savepoint name,
 * its rollback-only mark, the failure that aborted it on the server, and its callbacks. A
 * savepoint's statements take turns on a lane of its own.
 */
export class Block {
  /** Set when an error escaped a block that joined this one: it must not commit. */
  rollbackOnly = false;
  /** The failed statement after which the server refuses to commit this block (PostgreSQL). */
  aborted?: unknown;
  /**
   * Set on a transaction the server already rolled back whole (a MySQL/MariaDB deadlock, a lost
   * connection): the error its later statements and its commit get (sending them would commit
   * each on its own, or on another connection).
   */
  broken?: Error;
  /** Callbacks waiting for this block's transaction. */
  readonly callbacks = new TransactionCallbacks();
  /** The savepoint's lane; a transaction's statements use the session's own lane. */
  readonly lane?: Lane;

  constructor(
    /** The enclosing block; none for a transaction. */
    readonly parent?: Block,
    /** The lane the savepoint was opened on. */
    parentLane?: Lane,
    /** The SAVEPOINT's name; none for a transaction. */
    readonly savepoint?: string,
  ) {
    if (parentLane) this.lane = new Lane(parentLane, this);
  }

  /** The transaction this block belongs to. */
  get root(): Block {
    return this.parent?.root ?? this;
  }
}

import { logger } from '../logger.js';
import { messages } from '../errors/messages.js';
import { TransactionNotAllowedError } from '../errors/transaction-not-allowed.error.js';
import type { LazySession } from './lazy-session.js';
import type { SessionConnection } from './session-connection.js';
import { endedTransaction } from './transaction-dialect.js';

/** MySQL/MariaDB `LOCK TABLES`: refused in a session (see `messages.lockTables`). */
const LOCK_TABLES = /^\s*lock\s+tables?\s/i;
/** Statements that may commit implicitly on MySQL/MariaDB (DDL and a few others), even if they fail. */
const MAY_COMMIT =
  /^\s*(?:create|alter|drop|truncate|rename|unlock|grant|revoke|analyze|optimize|repair|flush|install|uninstall|cache|load\s+index)\s/i;

/**
 * One session's watch over MySQL/MariaDB's implicit commits (owned by its `TransactionWire`):
 * refuses `LOCK TABLES`, and after a statement that ended the transaction on its own, begins a
 * new one at once on the same connection.
 */
export class ImplicitCommits {
  constructor(
    private readonly session: LazySession,
    private readonly connection: SessionConnection,
    private readonly type: string,
    private readonly beginSql: readonly string[],
    /** Whether a transaction is open on the server (as the wire knows it). */
    private readonly open: () => boolean,
  ) {}

  /** Sends the user's statement `sql` (`sent` sends it), watching what it does to the transaction. */
  send(sql: string, sent: () => Promise<unknown>): Promise<unknown> {
    if (LOCK_TABLES.test(sql)) {
      return Promise.reject(
        new TransactionNotAllowedError(messages.lockTables(this.session.dataSourceName)),
      );
    }
    const sending = sent();
    // A DDL statement commits before it runs: even when it then fails, the transaction is over.
    return MAY_COMMIT.test(sql)
      ? sending.then(this.beginAgainIfEnded, this.beginAgainAfterFailure)
      : sending.then(this.beginAgainIfEnded);
  }

  /**
   * MySQL/MariaDB commit the open transaction implicitly at DDL, `TRUNCATE` (`repository.clear()`)
   * and a few other statements, then go on in autocommit mode. The work before that statement
   * stays committed (a warning says so); the session begins a new transaction at once on the same
   * connection, so that what comes after it is still committed or rolled back as one.
   */
  private readonly beginAgainIfEnded = async (result: unknown): Promise<unknown> => {
    if (!this.open() || this.connection.statements || !endedTransaction(this.type, result)) {
      return result;
    }
    logger.warn(messages.implicitCommit(this.session.dataSourceName));
    this.session.commits++;
    // Straight on the connection: the statement that ended the transaction still holds its lane.
    for (const sql of this.beginSql) await this.connection.exec(sql);
    return result;
  };

  /**
   * After a statement that may commit implicitly failed: asks the server (`DO 0`, whose answer
   * carries the transaction status) whether the transaction is still open, and begins a new one
   * if it is not. Rethrows the statement's error.
   */
  private readonly beginAgainAfterFailure = async (error: unknown): Promise<never> => {
    if (this.open() && this.connection.held && !this.connection.statements) {
      try {
        await this.beginAgainIfEnded(await this.connection.exec('DO 0'));
      } catch {
        // The connection failed too: the statement's own error says what happened.
      }
    }
    throw error;
  };
}

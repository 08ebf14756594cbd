import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { messages } from '../errors/messages.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import type { Block } from './block.js';
import { replicaRefusal } from './replica-writes.js';
import type { SessionConnection } from './session-connection.js';
import {
  abortsTransaction,
  type BeginOptions,
  isConnectionLost,
  rolledBackByServer,
} from './transaction-dialect.js';
import type { TransactionWire } from './transaction-wire.js';

/**
 * What failed statements and a broken connection did to one session's transaction on the server
 * (owned by its `TransactionWire`): the block they leave broken or aborted, and the error a
 * statement's caller gets.
 */
export class TransactionFailures {
  /** The transaction open on the held connection (until its end is known). */
  opened?: Block;

  constructor(
    private readonly wire: TransactionWire,
    private readonly connection: SessionConnection,
    private readonly type: string,
    /** What the session asked its transactions to be (its label is named when a replica refuses). */
    private readonly request: BeginOptions,
    /** Destroys the session's open streams with the error: they read from the lost connection. */
    private readonly loseStreams: (error: Error) => void,
  ) {}

  /**
   * Notes what a failed statement of `block` did to the transaction on the server; returns the
   * error the statement's caller gets instead, when there is a clearer one (a lost connection).
   */
  failed(block: Block, error: unknown): Error | undefined {
    if (isConnectionLost(this.type, error)) {
      if (this.wire.open || this.connection.held) return this.lose(error);
      // The driver's 'error' event can arrive first (PgBouncer forwards the server's FATAL): the
      // loss is already known, and the statement gets the same error as the rest.
      const known = block.root.broken;
      if (known instanceof ConnectionLostError) return known;
    }
    const clearer = this.connection.onReplica
      ? replicaRefusal(error, this.wire.name, this.request.label)
      : undefined;
    if (!this.wire.open || !abortsTransaction(this.type, error)) return clearer;
    if (rolledBackByServer(this.type, error)) {
      block.root.broken ??= new TransactionAbortedError(
        messages.transactionAborted(this.wire.name, false),
        {
          cause: error,
        },
      );
    } else block.aborted ??= error;
    return clearer;
  }

  /**
   * The connection broke (a statement failed for it, or the driver said so): the transaction it
   * carried is gone. Its later statements and its commit fail with the `ConnectionLostError`.
   */
  lose(cause: unknown): ConnectionLostError {
    const lost = new ConnectionLostError(messages.connectionLost(this.wire.name), { cause });
    // The transaction the connection carried (the session may already be on to the next one:
    // a COMMIT's answer and the server's goodbye can arrive in one read).
    if (this.wire.open) this.opened!.broken ??= lost;
    this.wire.open = false;
    // A stream may never hear of it: pg-cursor ignores the driver's error once its last row came.
    this.loseStreams(lost);
    void this.connection.destroy(cause);
    return lost;
  }
}

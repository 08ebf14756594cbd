import type { SessionHook } from '../interfaces/typeorm-context-options.interface.js';
import type { ConnectionWaits } from './connection-wait.js';
import type { TestRun } from './lenders.js';
import type { ConnectionLender } from './pooled-connection.js';
import type { ReplicaPools } from './replica-pools.js';
import type { CallbackPolicy } from './transaction-callbacks.js';

/** The module-level hooks every session runs, and what to do with its callbacks' errors. */
export interface SessionHooks extends CallbackPolicy {
  /** The app (its runtime) the sessions belong to: the frames of their hooks are that app's. */
  app: object;
  onSessionStart?: SessionHook;
  beforeCommit?: SessionHook;
  /** Milliseconds to wait for a pooled connection. Default: `DEFAULT_ACQUIRE_TIMEOUT`. */
  acquireTimeout?: number;
  /** The app's waits for connections (one timer for all of them). */
  waits: ConnectionWaits;
  /**
   * Who lends connections of `dataSource` instead of its pool to work born in the test
   * transaction `born` (none: born outside any), if anyone (a test transaction).
   */
  lender?(dataSource: string, born: TestRun | undefined): ConnectionLender | undefined;
  /**
   * The test transaction running now, which a session born outside any unit belongs to; set by
   * the testing kit at the app's first test (sessions note their test only from then on).
   */
  testRun?(): TestRun | undefined;
  /** The replicas of `dataSource` read-only transactions may run on; absent when none has any. */
  replicas?(dataSource: string): ReplicaPools | undefined;
}

/** Who owns a session, which decides the advice a late use gets. */
export type SessionOwner = 'context' | 'block' | 'factory';

/** Why a session ended: closed by its owner, released through its runner, its context over, or an error. */
export type EndReason = 'closed' | 'released' | 'context-ended' | Error;

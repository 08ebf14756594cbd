import { messages } from '../errors/messages.js';
import { TypeOrmContextError } from '../errors/typeorm-context.error.js';
import type { UnitOfWork } from './unit-of-work.js';

/** Commit passes after which beforeCommit hooks that keep writing are considered looping. */
const MAX_COMMIT_PASSES = 5;

/**
 * How the sessions of one unit of work end together (for its `UnitOfWork`): committed in order,
 * pass after pass while `beforeCommit` hooks keep writing, or rolled back; then, when the unit
 * ends, closed; and only then their callbacks run.
 */

/** Ends the transactions of `unit` open so far, the unit staying open (see `UnitOfWork.endTransactions()`). */
export async function endTransactions(unit: UnitOfWork, commit: boolean): Promise<void> {
  let failure: { error: unknown } | undefined;
  try {
    if (commit) await commitAll(unit, 1);
    else {
      for (const session of unit.sessions.values()) {
        if (!session.isEnded && !session.settled) await session.rollback();
      }
    }
  } catch (error) {
    failure = { error };
  }
  for (const session of unit.sessions.values()) {
    if (session.dueCallbacks.pending)
      await session.dueCallbacks.run().catch((error: unknown) => (failure ??= { error }));
  }
  if (failure) throw failure.error;
}

/** Ends `unit`: commits (with `commit`), closes every session, then runs their callbacks (see `UnitOfWork.end()`). */
export async function endUnit(unit: UnitOfWork, commit: boolean): Promise<void> {
  for (const session of unit.sessions.values()) session.endOpenStreams();
  let failure: { error: unknown } | undefined;
  if (commit) {
    try {
      await commitAll(unit);
    } catch (error) {
      failure = { error };
    }
  }
  // Synchronously after the last check that every session settled: nothing new can begin.
  unit.ended = true;
  const sessions = [...unit.sessions.values()];
  const closing = sessions.map((session) => session.close('context-ended'));
  await (closing.length === 1 ? closing[0] : Promise.all(closing));
  for (const session of sessions) {
    if (!session.dueCallbacks.pending) continue; // no promise round for nothing
    try {
      await session.dueCallbacks.run();
    } catch (error) {
      failure ??= { error }; // callbackErrors: 'throw'
    }
  }
  if (failure) throw failure.error;
}

/** Commits until every session settled, at most `passes` times (then fails, unless just one). */
async function commitAll(unit: UnitOfWork, passes = MAX_COMMIT_PASSES): Promise<void> {
  for (let pass = 1; ; pass++) {
    // A Map iterates over entries added while it runs: sessions hooks create commit in this pass.
    for (const session of unit.sessions.values()) {
      if (session.isEnded || session.settled) continue;
      await session.commit();
    }
    if (passes === 1 || unit.settled) return;
    if (pass === passes) {
      const unsettled = [...unit.sessions.values()].filter((s) => !s.isEnded && !s.settled);
      throw new TypeOrmContextError(
        messages.commitLoop(unsettled.map((session) => session.dataSourceName)),
      );
    }
  }
}

import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import { UnitOfWork } from '../context/unit-of-work.js';
import type { UnitKind } from '../diagnostics/channels.js';
import { reportError } from '../logger.js';

/**
 * Runs `fn` in a fresh unit of work of `runtime`'s app (`runInNewContext()`, a job): committed
 * when `fn` resolves, rolled back if it rejects, always ended. `kind` is what the `unit` tracing
 * channel reports; `positions`, what its reads must see.
 */
export function runInNewUnit<T>(
  runtime: SessionRuntime,
  fn: () => Promise<T> | T,
  kind: UnitKind,
  /** Primary WAL positions its reads must see (a consistency token), if any. */
  positions?: ReadonlyMap<string, bigint>,
): Promise<T> {
  const outer = contextStorage.getStore();
  const unit = new UnitOfWork(outer?.ownedBy(runtime)?.routingUnit, runtime);
  unit.setKind(kind);
  if (positions !== undefined) unit.carry(positions);
  return contextStorage.run(ContextFrame.forUnit(unit, outer), async () => {
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      await unit
        .end(false)
        .catch((rollbackError: unknown) =>
          reportError('Rollback after a failed context failed', rollbackError),
        );
      throw error;
    }
    await unit.end(true);
    return result;
  });
}

import type { DataSource } from 'typeorm';
import { contextStorage } from '../context/context-storage.js';
import { type TakenConnection, takeConnection } from './pooled-connection.js';
import { poolHasRoom } from './transaction-dialect.js';

/** How often the one timer looks for waiters past their deadline (ms). */
const TICK = 25;

/** A wait the one timer watches: `expire` runs once its deadline passed (see `deadline()`). */
export interface Waiter {
  deadline: number;
  expire(): void;
}

/**
 * Who waits for a connection and may stop wanting it (a session whose context ended): `within`
 * gives it a way to end the wait at once, as its timeout would.
 */
export interface WaitOwner {
  /** Set by `within` while a wait of this owner lasts: ends it now (a no-op once it ended). */
  stopWait?: () => void;
  /** True once the owner wants no connection any more: a wait it starts gives up at once. */
  readonly waitStopped: boolean;
}

/**
 * The waits for connections of one app (its runtime owns it): one timer watches every waiter, so
 * a saturated pool costs no timer per connect. Per app, so that nothing of one app's sessions is
 * process-wide state another app shares.
 */
export class ConnectionWaits {
  private readonly waiters = new Set<Waiter>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * A pooled connection of `dataSource`: at once while the pool has room, else within `ms`
   * (`undefined` after that; one that comes later goes back to the pool).
   */
  take(
    dataSource: DataSource,
    ms: number,
    owner?: WaitOwner,
  ): Promise<TakenConnection | undefined> {
    // Asked first: whether the pool has room is read right after the ask (see poolHasRoom).
    const connecting = takeConnection(dataSource);
    return poolHasRoom(dataSource) ? connecting : this.within(connecting, ms, releaseLate, owner);
  }

  /**
   * Waits at most `ms` (± 25 ms) for `connecting`, or until `owner` stops the wait. Resolves
   * `undefined` then, after arranging for a connection that arrives later to be handed to `late`
   * (which gives it back). Sessions call it only when the pool is full.
   */
  within<T>(
    connecting: Promise<T>,
    ms: number,
    late: (value: T) => void,
    owner?: WaitOwner,
  ): Promise<T | undefined> {
    if (owner?.waitStopped) {
      connecting.then(late, () => undefined);
      return Promise.resolve(undefined);
    }
    return new Promise<T | undefined>((resolve, reject) => {
      const waiter: Waiter = {
        deadline: Date.now() + ms,
        expire: () => {
          resolve(undefined);
          connecting.then(late, () => undefined);
        },
      };
      this.watch(waiter);
      if (owner) owner.stopWait = () => this.expireNow(waiter);
      connecting.then(
        (value) => {
          if (this.waiters.delete(waiter)) resolve(value);
        },
        (error: unknown) => {
          if (this.waiters.delete(waiter)) reject(error as Error);
        },
      );
    });
  }

  /**
   * Calls `expire` once `ms` (± 25 ms) have passed, unless `cancel()` gets the returned waiter
   * first (`hasten()` brings it forward). On the same timer as `within`, and without a promise
   * of its own: it watches every BEGIN.
   */
  deadline(ms: number, expire: () => void): Waiter {
    const waiter: Waiter = { deadline: Date.now() + ms, expire };
    this.watch(waiter);
    return waiter;
  }

  /** Stops watching `waiter`: its `expire` is not called. */
  cancel(waiter: Waiter): void {
    this.waiters.delete(waiter);
  }

  /** Brings `waiter`'s deadline forward to at most `ms` (± 25 ms) from now. */
  hasten(waiter: Waiter, ms: number): void {
    waiter.deadline = Math.min(waiter.deadline, Date.now() + ms);
  }

  /** Ends `waiter`'s wait now, as its deadline would (unless it ended already). */
  private expireNow(waiter: Waiter): void {
    if (this.waiters.delete(waiter)) waiter.expire();
  }

  private watch(waiter: Waiter): void {
    this.waiters.add(waiter);
    if (this.timer === undefined) {
      // Outside the unit that happens to start it: the timer outlives it, and expires the waits
      // of every unit.
      this.timer = contextStorage.exit(() => setInterval(() => this.sweep(), TICK));
      this.timer.unref();
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const waiter of this.waiters) {
      if (waiter.deadline > now) continue;
      this.waiters.delete(waiter);
      waiter.expire();
    }
    if (this.waiters.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** Gives back a connection that came after its wait gave up. */
export function releaseLate(late: { release(): void }): void {
  late.release();
}

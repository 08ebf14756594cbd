import type { TracingChannel } from 'node:diagnostics_channel';
import { messages } from '../errors/messages.js';
import { type LogUnit, logger } from '../logger.js';
import {
  type TransactionMessage,
  transactionChannel,
  type UnitMessage,
  unitChannel,
} from './channels.js';
import { unitOf } from './message-unit.js';

/** A unit of work as this log reads it off a message (see `message-unit.ts`). */
interface TracedUnit extends LogUnit {
  /** The app whose unit it is. */
  readonly runtime?: object;
}

const ignore = (): void => undefined;

/**
 * The `slowTransactionMs` option: one app's subscriber to the `transaction` and `unit` channels
 * that warns about every transaction a block began (`mode: 'begin'`) and every unit of work that
 * took longer than the threshold. Created only when the option is set: otherwise nothing
 * subscribes and the channels stay without subscribers.
 *
 * The channels are process-wide: a message is this app's when the unit recorded on it (see
 * `message-unit.ts`) is. The handlers run inside the library's own calls, so they never throw: a
 * failing logger costs a line, never a request. The app's runtime subscribes at startup and
 * unsubscribes when the app shuts down.
 */
export class SlowTransactionLog {
  /** When each message started (ms, `performance.now()`). */
  private readonly started = new WeakMap<object, number>();
  private readonly onTransaction = this.handlers<TransactionMessage>((message, ms, unit) => {
    if (message.mode !== 'begin') return;
    const owner = message.label ?? `a ${message.propagation} block`;
    logger.warnAbout(unit, messages.slowTransaction(owner, message, ms, this.thresholdMs));
  });
  private readonly onUnit = this.handlers<UnitMessage>((message, ms, unit) => {
    logger.warnAbout(unit, messages.slowUnit(message, ms, this.thresholdMs));
  });

  constructor(
    /** The app (its runtime) whose transactions and units are logged. */
    private readonly app: object,
    /** Longer than this many ms is slow. */
    private readonly thresholdMs: number,
  ) {}

  /** Starts listening. */
  subscribe(): void {
    transactionChannel.subscribe(this.onTransaction);
    unitChannel.subscribe(this.onUnit);
  }

  /** Stops listening (the channels have no subscribers again unless others subscribed). */
  unsubscribe(): void {
    transactionChannel.unsubscribe(this.onTransaction);
    unitChannel.unsubscribe(this.onUnit);
  }

  /** Handlers that time each message and call `slow` for this app's that took too long. */
  private handlers<M extends object>(
    slow: (message: M, ms: number, unit: TracedUnit) => void,
  ): Parameters<TracingChannel<unknown, M>['subscribe']>[0] {
    return {
      start: (message) => {
        this.started.set(message, performance.now());
      },
      end: ignore,
      asyncStart: ignore,
      error: ignore,
      asyncEnd: (message) => {
        try {
          const began = this.started.get(message);
          const unit = unitOf(message) as TracedUnit | undefined;
          if (began === undefined || unit?.runtime !== this.app) return;
          const ms = performance.now() - began;
          if (ms > this.thresholdMs) slow(message, ms, unit);
        } catch {
          // A log line is not worth a request (a throwing handler would crash the process).
        }
      },
    };
  }
}

import { tracingChannel } from 'node:diagnostics_channel';
import {
  CONNECTION_CHANNEL,
  SAVEPOINT_CHANNEL,
  TRANSACTION_CHANNEL,
  UNIT_CHANNEL,
} from '../../src/index.js';

/** One published event: its channel (short name), its kind and a copy of the message then. */
export interface Recorded {
  channel: 'unit' | 'transaction' | 'connection' | 'savepoint';
  event: 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error';
  message: Record<string, unknown>;
  /** The message object itself (identity across events). */
  raw: object;
}

const NAMES = {
  unit: UNIT_CHANNEL,
  transaction: TRANSACTION_CHANNEL,
  connection: CONNECTION_CHANNEL,
  savepoint: SAVEPOINT_CHANNEL,
} as const;

/** Subscribes to the four channels; `stop()` unsubscribes. */
export function record(
  channels: Array<Recorded['channel']> = ['unit', 'transaction', 'connection', 'savepoint'],
  onEvent?: (event: Recorded) => void,
) {
  const events: Recorded[] = [];
  const subscriptions: Array<() => void> = [];
  for (const channel of channels) {
    const handlers = Object.fromEntries(
      (['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const).map((event) => [
        event,
        (message: object) => {
          const entry: Recorded = {
            channel,
            event,
            message: { ...(message as Record<string, unknown>) },
            raw: message,
          };
          events.push(entry);
          onEvent?.(entry);
        },
      ]),
    );
    const tc = tracingChannel(NAMES[channel]);
    tc.subscribe(handlers as never);
    subscriptions.push(() => tc.unsubscribe(handlers as never));
  }
  return {
    events,
    /** `channel:event` strings, in order. */
    names: (filter?: Array<Recorded['channel']>) =>
      events
        .filter((e) => filter === undefined || filter.includes(e.channel))
        .map((e) => `${e.channel}:${e.event}`),
    stop: () => subscriptions.forEach((unsubscribe) => unsubscribe()),
  };
}

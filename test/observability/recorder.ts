import { tracingChannel } from 'node:diagnostics_channel';
import {
  CONNECTION_CHANNEL,
  SAVEPOINT_CHANNEL,
  TRANSACTION_CHANNEL,
  UNIT_CHANNEL,
} from '../../src/index.js';

const CHANNELS = {
  unit: UNIT_CHANNEL,
  transaction: TRANSACTION_CHANNEL,
  connection: CONNECTION_CHANNEL,
  savepoint: SAVEPOINT_CHANNEL,
} as const;

/** One published event: the channel, the event, and the message's fields at that moment. */
export type Recorded = Record<string, unknown> & { channel: string; event: string };

/** What a subscriber to every channel saw; `stop()` unsubscribes. */
export interface Recorder {
  events: Recorded[];
  stop(): void;
}

/**
 * Subscribes to `start`, `error` and `asyncEnd` of the four channels and records a copy of each
 * message (an error as its class name; `waited` as whether it is a number of ms; without `db`).
 */
export function record(): Recorder {
  const events: Recorded[] = [];
  const stops: Array<() => void> = [];
  for (const [channel, name] of Object.entries(CHANNELS)) {
    const traced = tracingChannel<unknown, Record<string, unknown>>(name);
    const on = (event: string) => (message: Record<string, unknown>) => {
      const copy: Recorded = { channel, event };
      for (const [key, value] of Object.entries(message)) {
        // `db` (the same for every message of a data source) has a test of its own.
        if (value === undefined || key === 'result' || key === 'db') continue;
        if (key === 'error') copy.error = (value as Error).constructor.name;
        else if (key === 'waited') copy.waited = typeof value === 'number' && value >= 0;
        else copy[key] = value;
      }
      events.push(copy);
    };
    const handlers = { start: on('start'), error: on('error'), asyncEnd: on('asyncEnd') };
    traced.subscribe(handlers as never);
    stops.push(() => traced.unsubscribe(handlers as never));
  }
  return { events, stop: () => stops.forEach((stop) => stop()) };
}

import { finished, type Readable } from 'node:stream';
import type { Lane } from './lane.js';

/**
 * The streams a session has open, with the lane each was opened on. A stream holds its lane's
 * turn until it closes, so statements queued after it wait instead of reaching a connection the
 * stream is still reading from.
 */
export class SessionStreams {
  private readonly open = new Map<Readable, Lane>();

  /** How many streams are open. */
  get size(): number {
    return this.open.size;
  }

  /** Keeps `stream` as open on `lane`; resolves when it has closed (ended, failed or destroyed). */
  hold(stream: Readable, lane: Lane): Promise<void> {
    this.open.set(stream, lane);
    return new Promise<void>((resolve) =>
      finished(stream, () => {
        this.open.delete(stream);
        resolve();
      }),
    );
  }

  /** Destroys with `error` the open streams (those whose lane `which` picks). */
  destroy(error: () => Error, which: (lane: Lane) => boolean = () => true): void {
    for (const [stream, lane] of this.open) if (which(lane)) stream.destroy(error());
  }
}

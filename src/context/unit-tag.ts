import { defaultRequestId } from '../typeorm-context.options.js';
import type { UnitOfWork } from './unit-of-work.js';

/**
 * The ids of units of work and the tag their log lines carry. Ids count up per process (two apps
 * in one process never give one id twice); a unit takes one the first time it is asked for
 * (a log line, `sessionContext.unitId()`), so a unit that never logs costs nothing here.
 */

let lastId = 0;

/** A new unit id. */
export function nextUnitId(): number {
  return ++lastId;
}

/**
 * The request id of `unit`'s app for its request (see the `requestId` option), or of the unit it
 * was opened in (`runInNewContext()` in a request); undefined when there is none, or when reading
 * it failed (a log line never fails for it).
 */
export function requestIdOf(unit: UnitOfWork): string | undefined {
  if (unit.request === undefined) return unit.parent && requestIdOf(unit.parent);
  const read = unit.runtime === undefined ? defaultRequestId : unit.runtime.options.requestId;
  if (read === false) return undefined;
  try {
    const id = read(unit.request);
    return (typeof id === 'string' && id !== '') || typeof id === 'number' ? String(id) : undefined;
  } catch {
    return undefined;
  }
}

/** `unit 12`, or `unit 12 req abc-1` when the unit has a request id. */
export function unitTag(unit: UnitOfWork): string {
  const request = requestIdOf(unit);
  return request === undefined ? `unit ${unit.id}` : `unit ${unit.id} req ${request}`;
}

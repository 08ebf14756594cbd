import { Inject, Injectable, type NestMiddleware, Optional } from '@nestjs/common';
import { ContextFrame } from '../context/context-frame.js';
import { contextStorage } from '../context/context-storage.js';
import { reportError } from '../logger.js';
import { SessionRuntime } from '../context/session-runtime.js';
import { UnitOfWork } from '../context/unit-of-work.js';
import { carryRequestToken, overHttp, sendOnHead } from '../interceptors/consistency-carrier.js';

/** The part of a Node response the middleware needs (Express and Fastify raw responses alike). */
export interface ClosableResponse {
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Runs the rest of the request in a new context. The interceptor claims and commits it; if it
 * never runs (a guard threw, or the route has none), a context that created a session is rolled
 * back and released when the response closes. A plain function: the module mounts it with the
 * HTTP adapter's own `use()`, the cheapest hook the platform has. The context belongs to
 * `runtime`'s app: another app's sessions never join it. Without `runtime` it belongs to the
 * first app that uses it (the only one, in a process with one app).
 */
export function openRequestContext(
  request: unknown,
  response: ClosableResponse,
  next: () => void,
  runtime?: SessionRuntime,
): void {
  const unit = new UnitOfWork(undefined, runtime);
  unit.forRequest = true;
  unit.setKind('http');
  unit.request = request;
  // Read here, so that guards' reads honour it too (the interceptor reads it again, harmlessly).
  const consistency = overHttp(runtime?.options.consistency);
  if (consistency !== undefined) {
    carryRequestToken(unit, request, consistency);
    sendOnHead(unit, response, consistency); // whoever writes the response (see there)
  }
  unit.response = response;
  unit.onFirstSession = armCleanup; // shared: no closure per request
  contextStorage.run(ContextFrame.forUnit(unit), next);
}

/** Rolls back and releases, when the response closes, a request's unit no handler claimed. */
function armCleanup(unit: UnitOfWork): void {
  if (unit.claimed) return;
  (unit.response as ClosableResponse).once('close', () => {
    if (unit.claimed) return;
    unit.end(false).catch((error: unknown) => reportError('Request cleanup failed', error, unit));
  });
}

/**
 * Opens the request's context before guards and pipes run, so an auth guard can load the user
 * through the session. Mounted on every route by default; with `middleware: false`, apply it
 * yourself (`consumer.apply(SessionContextMiddleware).forRoutes(...)`) where you need it.
 */
@Injectable()
export class SessionContextMiddleware implements NestMiddleware {
  /** The app's runtime (a property, so that subclasses keep their own constructors). */
  @Optional() @Inject(SessionRuntime) private readonly runtime?: SessionRuntime;

  /** Runs the rest of the request inside a new context. */
  use(request: unknown, response: ClosableResponse, next: () => void): void {
    openRequestContext(request, response, next, this.runtime);
  }
}

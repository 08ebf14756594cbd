import type { ConsistencyOptions } from '../interfaces/typeorm-context-options.interface.js';
import { decodeToken, encodeToken } from '../context/consistency-token.js';
import type { UnitOfWork } from '../context/unit-of-work.js';

/** An HTTP request, as far as its headers go (Express, Fastify and Node's own alike). */
interface HeaderedRequest {
  headers?: Record<string, string | string[] | undefined>;
}

/** An HTTP response: Fastify's reply (`header()`, `raw`) or a Node/Express response. */
interface HeaderedResponse {
  header?: (name: string, value: string) => unknown;
  raw?: { headersSent?: boolean };
  sent?: boolean;
  headersSent?: boolean;
  getHeader?: (name: string) => unknown;
  setHeader?: (name: string, value: string | string[]) => unknown;
}

/** The consistency options, resolved. */
type Carried = Required<ConsistencyOptions>;

/**
 * Reads the consistency tokens an HTTP request carries (the `consistency.header`, the
 * `consistency.cookie`) into `unit`: its read-only transactions then run only on replicas that
 * replayed the furthest of them. A value that is not a token is ignored (a client cannot fail its
 * own requests with one).
 */
export function carryRequestToken(unit: UnitOfWork, request: unknown, options: Carried): void {
  const headers = (request as HeaderedRequest | null | undefined)?.headers;
  if (headers === undefined) return;
  if (options.header !== false) carryAll(unit, headers[options.header]);
  if (options.cookie !== false) carryAll(unit, cookies(headers.cookie, options.cookie));
}

/**
 * Carries every token of a header's values: a header sent twice arrives joined with `, ` (a comma
 * is never part of a token), and each name keeps its furthest position.
 */
function carryAll(unit: UnitOfWork, values: string | string[] | undefined): void {
  if (values === undefined) return;
  for (const value of Array.isArray(values) ? values : [values]) {
    for (const token of value.split(',')) {
      const positions = decodeToken(token.trim());
      if (positions !== undefined) unit.carry(positions);
    }
  }
}

/**
 * Sends `unit`'s consistency token on its HTTP response once a commit moved it (the header, the
 * cookie or both), while the response's headers are not sent yet (not after a streamed body or
 * an SSE stream began).
 */
export function sendToken(
  unit: UnitOfWork,
  response: unknown,
  options: Carried,
  /** The headers `writeHead()` was given, which win over those set before: set there. */
  into?: Record<string, unknown>,
): void {
  if (!unit.advanced) return;
  const reply = response as HeaderedResponse | null | undefined;
  if (reply === null || reply === undefined) return;
  if (reply.sent === true || reply.headersSent === true || reply.raw?.headersSent === true) return;
  const token = encodeToken(unit.allPositions());
  if (token === undefined || token === unit.sentToken) return;
  unit.sentToken = token;
  if (options.header !== false) set(reply, options.header, token, into);
  if (options.cookie !== false) {
    set(reply, 'set-cookie', `${options.cookie}=${token}; Path=/; HttpOnly; SameSite=Lax`, into);
  }
}

/**
 * Sends `unit`'s new token as `response`'s headers go out, whoever writes them: the interceptor's
 * answer, an exception filter's after a guard that committed and threw, a route without the
 * interceptor (`autoCommit: false`), a handler with `@Res()`, a GraphQL operation. Wraps the
 * response's `writeHead()` (Node calls it for an implicit head too), once.
 */
export function sendOnHead(unit: UnitOfWork, response: unknown, options: Carried): void {
  const res = response as { writeHead?: (...args: unknown[]) => unknown } | null | undefined;
  const writeHead = res?.writeHead;
  if (res === null || res === undefined || typeof writeHead !== 'function') return;
  res.writeHead = function (this: unknown, ...args: unknown[]) {
    res.writeHead = writeHead;
    if (unit.advanced) {
      const last = args[args.length - 1];
      const into =
        typeof last === 'object' && last !== null && !Array.isArray(last)
          ? (last as Record<string, unknown>)
          : undefined;
      sendToken(unit, this, options, into);
    }
    return writeHead.apply(this, args);
  };
}

/**
 * Sets a header on Fastify's reply or a Node response (or in the headers `writeHead()` got);
 * `set-cookie` is added to those set.
 */
function set(
  reply: HeaderedResponse,
  name: string,
  value: string,
  into: Record<string, unknown> | undefined,
): void {
  if (into !== undefined) {
    const key = Object.keys(into).find((known) => known.toLowerCase() === name);
    // A cookie goes with those `writeHead()` got, or else with those set before (below).
    if (key !== undefined || name !== 'set-cookie') {
      const given = key === undefined ? undefined : into[key];
      if (key !== undefined) delete into[key];
      into[name] = name === 'set-cookie' ? [...asList(given), value] : value;
      return;
    }
  }
  if (typeof reply.header === 'function' && reply.raw !== undefined) {
    reply.header(name, value); // Fastify adds set-cookie values to those already set
    return;
  }
  if (typeof reply.setHeader !== 'function') return;
  if (name !== 'set-cookie') {
    reply.setHeader(name, value);
    return;
  }
  reply.setHeader(name, [...asList(reply.getHeader?.(name)), value]);
}

/** A header's values as a list. */
function asList(value: unknown): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

/** The values of cookie `name` in `Cookie` headers, without the double quotes a value may have. */
function cookies(header: string | string[] | undefined, name: string): string[] {
  const found: string[] = [];
  for (const line of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    for (const pair of line.split(';')) {
      const at = pair.indexOf('=');
      if (at <= 0 || pair.slice(0, at).trim() !== name) continue;
      const value = pair.slice(at + 1).trim();
      const quoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"');
      found.push(quoted ? value.slice(1, -1) : value);
    }
  }
  return found;
}

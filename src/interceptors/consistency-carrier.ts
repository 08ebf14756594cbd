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
  removeHeader?: (name: string) => unknown;
}

/** The consistency options, resolved. */
type Carried = Required<ConsistencyOptions>;

/** The consistency options where tokens travel over HTTP (a header or a cookie is set), else undefined. */
export function overHttp(options: Carried | undefined): Carried | undefined {
  return options !== undefined && (options.header !== false || options.cookie !== false)
    ? options
    : undefined;
}

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
 * cookie or both, replacing what an earlier send set), while the response's headers are not sent
 * yet (not after a streamed body or an SSE stream began).
 */
export function sendToken(unit: UnitOfWork, response: unknown, options: Carried): void {
  const reply = response as HeaderedResponse | null | undefined;
  if (reply === null || reply === undefined) return;
  if (reply.sent === true || reply.headersSent === true || reply.raw?.headersSent === true) return;
  for (const [name, value] of tokenHeaders(unit, options)) set(reply, name, value, options);
}

/**
 * Sends `unit`'s token as `response`'s headers go out, whoever writes them: the interceptor's
 * answer, an exception filter's after a guard that committed and threw, a route without the
 * interceptor (`autoCommit: false`), a handler with `@Res()`, a GraphQL operation. Wraps the
 * response's `writeHead()` (Node calls it for an implicit head too), once; headers given to it
 * (an object or a flat array, which win over those set before) are copied with the token's, never
 * changed: an app may reuse or freeze them.
 */
export function sendOnHead(unit: UnitOfWork, response: unknown, options: Carried): void {
  const res = response as (HeaderedResponse & { writeHead?: WriteHead }) | null | undefined;
  const writeHead = res?.writeHead;
  if (res === null || res === undefined || typeof writeHead !== 'function') return;
  res.writeHead = function (this: HeaderedResponse, ...args: unknown[]) {
    res.writeHead = writeHead;
    const headers = tokenHeaders(unit, options);
    if (headers.length === 0) return writeHead.apply(this, args);
    const at = args.length - 1;
    const given = args[at];
    if (Array.isArray(given)) {
      args[at] = withToken(given, headers, options);
    } else if (at > 0 && typeof given === 'object' && given !== null) {
      const copy: Record<string, unknown> = { ...(given as Record<string, unknown>) };
      for (const [name, value] of headers) {
        const key = Object.keys(copy).find((known) => known.toLowerCase() === name);
        const before = key === undefined ? undefined : copy[key];
        if (key !== undefined) delete copy[key];
        // A cookie goes with those given here, or, when none is, with those set before.
        if (name === 'set-cookie' && before === undefined) set(this, name, value, options);
        else copy[name] = name === 'set-cookie' ? [...others(before, options), value] : value;
      }
      args[at] = copy;
    } else {
      for (const [name, value] of headers) set(this, name, value, options);
    }
    return writeHead.apply(this, args);
  };
}

type WriteHead = (...args: unknown[]) => unknown;

/** The headers that carry `unit`'s token, if a commit moved it: `[name, value]` pairs. */
function tokenHeaders(unit: UnitOfWork, options: Carried): Array<[string, string]> {
  if (!unit.advanced) return [];
  const token = encodeToken(unit.allPositions());
  if (token === undefined) return [];
  const headers: Array<[string, string]> = [];
  if (options.header !== false) headers.push([options.header, token]);
  if (options.cookie !== false) {
    headers.push(['set-cookie', `${options.cookie}=${token}; Path=/; HttpOnly; SameSite=Lax`]);
  }
  return headers;
}

/** Cookies of `value` but an earlier token cookie (a later send replaces it). */
function others(value: unknown, options: Carried): string[] {
  const mine = `${String(options.cookie)}=`;
  return asList(value).filter((cookie) => !cookie.startsWith(mine));
}

/**
 * A flat `writeHead()` header list with the token's headers: an earlier token header or cookie
 * replaced, and every cookie in one entry (Node keeps only the last of a name repeated there).
 */
function withToken(list: unknown[], headers: Array<[string, string]>, options: Carried): unknown[] {
  const kept: unknown[] = [];
  const cookies: string[] = [];
  for (let i = 0; i + 1 < list.length; i += 2) {
    const name = String(list[i]).toLowerCase();
    if (name === 'set-cookie') cookies.push(...others(list[i + 1], options));
    else if (name !== options.header) kept.push(list[i], list[i + 1]);
  }
  for (const [name, value] of headers) {
    if (name === 'set-cookie') cookies.push(value);
    else kept.push(name, value);
  }
  if (cookies.length > 0) kept.push('set-cookie', cookies);
  return kept;
}

/** Sets a header on Fastify's reply or a Node response; the token cookie replaces an earlier one. */
function set(reply: HeaderedResponse, name: string, value: string, options: Carried): void {
  const fastify = typeof reply.header === 'function' && reply.raw !== undefined;
  if (name !== 'set-cookie') {
    if (fastify) reply.header!(name, value);
    else reply.setHeader?.(name, value);
    return;
  }
  const cookies = [...others(reply.getHeader?.(name), options), value];
  if (fastify) {
    reply.removeHeader?.(name);
    reply.header!(name, cookies as unknown as string);
  } else reply.setHeader?.(name, cookies);
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

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
 * Reads the consistency token an HTTP request carries (the `consistency.header`, else the
 * `consistency.cookie`) into `unit`: its read-only transactions then run only on replicas that
 * replayed it. A value that is not a token is ignored (a client cannot fail its own requests
 * with one).
 */
export function carryRequestToken(unit: UnitOfWork, request: unknown, options: Carried): void {
  const headers = (request as HeaderedRequest | null | undefined)?.headers;
  if (headers === undefined) return;
  let token: string | undefined;
  if (options.header !== false) token = first(headers[options.header]);
  if (token === undefined && options.cookie !== false) {
    token = cookie(first(headers.cookie), options.cookie);
  }
  const positions = token === undefined ? undefined : decodeToken(token);
  if (positions !== undefined) unit.carry(positions);
}

/**
 * Sends `unit`'s consistency token on its HTTP response once a commit moved it (the header, the
 * cookie or both), while the response's headers are not sent yet (not after a streamed body or
 * an SSE stream began).
 */
export function sendToken(unit: UnitOfWork, response: unknown, options: Carried): void {
  if (!unit.advanced) return;
  const reply = response as HeaderedResponse | null | undefined;
  if (reply === null || reply === undefined) return;
  if (reply.sent === true || reply.headersSent === true || reply.raw?.headersSent === true) return;
  const token = encodeToken(unit.allPositions());
  if (token === undefined) return;
  if (options.header !== false) set(reply, options.header, token);
  if (options.cookie !== false) {
    set(reply, 'set-cookie', `${options.cookie}=${token}; Path=/; HttpOnly; SameSite=Lax`);
  }
}

/** Sets a header on Fastify's reply or a Node response; `set-cookie` is added to those set. */
function set(reply: HeaderedResponse, name: string, value: string): void {
  if (typeof reply.header === 'function' && reply.raw !== undefined) {
    reply.header(name, value); // Fastify adds set-cookie values to those already set
    return;
  }
  if (typeof reply.setHeader !== 'function') return;
  if (name !== 'set-cookie') {
    reply.setHeader(name, value);
    return;
  }
  const before = reply.getHeader?.(name);
  const cookies = before === undefined ? [] : Array.isArray(before) ? before : [String(before)];
  reply.setHeader(name, [...(cookies as string[]), value]);
}

/** The value of a header that may come as a list. */
function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The value of cookie `name` in a `Cookie` header. */
function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim();
  }
  return undefined;
}

import { formatLsn, parseLsn } from '../session/wal-position.js';

/**
 * Consistency tokens: the primary WAL positions a client's reads must see, by data source, as one
 * string a header or cookie can carry: `default=16/B374D848`, entries joined with `&`, names
 * URI-encoded (no comma, semicolon, space or quote: a valid cookie value as it is).
 */

/** The token of `positions`, or undefined when there are none. */
export function encodeToken(positions: ReadonlyMap<string, bigint>): string | undefined {
  if (positions.size === 0) return undefined;
  const entries: string[] = [];
  for (const [name, position] of positions) {
    entries.push(`${encodeURIComponent(name)}=${formatLsn(position)}`);
  }
  return entries.join('&');
}

/**
 * The longest token read: Node's own limit on a request's headers (16 KiB); a gateway's token of
 * many services' positions is longer than one app's, and the app hands it back whole.
 */
const MAX_TOKEN = 16_384;

/** The positions `token` names, or undefined when it is not a token (nothing of it is used then). */
export function decodeToken(token: unknown): Map<string, bigint> | undefined {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN) return undefined;
  const positions = new Map<string, bigint>();
  for (const entry of token.split('&')) {
    const at = entry.lastIndexOf('=');
    if (at <= 0) return undefined;
    let name: string;
    try {
      name = decodeURIComponent(entry.slice(0, at));
    } catch {
      return undefined;
    }
    const position = parseLsn(entry.slice(at + 1));
    if (position === undefined) return undefined;
    const known = positions.get(name);
    if (known === undefined || position > known) positions.set(name, position);
  }
  return positions;
}

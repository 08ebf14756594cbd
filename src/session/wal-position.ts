/**
 * PostgreSQL WAL positions (LSNs, `16/B374D848`) as the library compares them, and the COMMIT that
 * learns the position of what it committed in the same round trip.
 */

/** `X/Y`, two hexadecimal numbers of at most 32 bits each. */
const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** The position `text` names (`16/B374D848`), or undefined when it names none. */
export function parseLsn(text: unknown): bigint | undefined {
  if (typeof text !== 'string') return undefined;
  const parts = LSN.exec(text);
  if (parts === null) return undefined;
  return (BigInt(`0x${parts[1]}`) << 32n) | BigInt(`0x${parts[2]}`);
}

/** `position` as PostgreSQL writes it (`16/B374D848`). */
export function formatLsn(position: bigint): string {
  const high = (position >> 32n).toString(16).toUpperCase();
  const low = (position & 0xffffffffn).toString(16).toUpperCase();
  return `${high}/${low}`;
}

/**
 * COMMIT on a replicated primary, in one round trip (the simple query protocol runs the three
 * statements of one message in order): whether the transaction wrote (it has a transaction id
 * only then), the COMMIT, and the WAL insert position after it, which is past the commit record:
 * a replica that replayed up to it sees the commit. Sent only on a healthy transaction (a failed
 * one is rolled back instead), so the first statement cannot fail and skip the COMMIT.
 */
export const COMMIT_WITH_POSITION =
  'SELECT txid_current_if_assigned() IS NOT NULL AS wrote; COMMIT; ' +
  'SELECT pg_current_wal_insert_lsn()::text AS position';

/** One statement's result, as pg hands a multi-statement query's results. */
interface StatementResult {
  command?: string;
  rows?: Array<Record<string, unknown>>;
}

/**
 * The position of what `COMMIT_WITH_POSITION` committed: undefined when the transaction wrote
 * nothing (or the server turned the COMMIT into a ROLLBACK).
 */
export function committedPosition(results: unknown): bigint | undefined {
  if (!Array.isArray(results) || results.length !== 3) return undefined;
  const [wrote, commit, after] = results as StatementResult[];
  if (wrote?.rows?.[0]?.wrote !== true || commit?.command !== 'COMMIT') return undefined;
  return parseLsn(after?.rows?.[0]?.position);
}

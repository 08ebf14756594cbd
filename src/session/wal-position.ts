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
 * one is rolled back instead), so the first statement cannot fail and skip the COMMIT. With the
 * position, its offset in its WAL segment and the WAL page size: see `committedPosition()`.
 */
export const COMMIT_WITH_POSITION =
  'SELECT txid_current_if_assigned() IS NOT NULL AS wrote; COMMIT; ' +
  'SELECT p::text AS position, (pg_walfile_name_offset(p)).file_offset AS offset, ' +
  "current_setting('wal_block_size')::int AS page FROM pg_current_wal_insert_lsn() AS p";

/** The size of a WAL page's header, and of the first page's of a segment (PostgreSQL's `XLogPageHeaderData`, `XLogLongPageHeaderData`). */
const PAGE_HEADER = 24n;
const SEGMENT_HEADER = 40n;

/** One statement's result, as pg hands a multi-statement query's results. */
interface StatementResult {
  command?: string;
  rows?: Array<Record<string, unknown>>;
}

/**
 * The position of what `COMMIT_WITH_POSITION` committed: undefined when the transaction wrote
 * nothing (or the server turned the COMMIT into a ROLLBACK). Where the commit record ended a WAL
 * page, the insert position is past the next page's header, where no standby's replay position
 * ever stops (it stops at the end of the record): the header is taken off. Nothing but a header
 * can end there (a record's continuation on a page is never empty).
 */
export function committedPosition(results: unknown): bigint | undefined {
  if (!Array.isArray(results) || results.length !== 3) return undefined;
  const [wrote, commit, after] = results as StatementResult[];
  if (wrote?.rows?.[0]?.wrote !== true || commit?.command !== 'COMMIT') return undefined;
  const row = after?.rows?.[0];
  const position = parseLsn(row?.position);
  if (position === undefined) return undefined;
  const offset = BigInt(Number(row?.offset) || 0);
  const page = BigInt(Number(row?.page) || 8192);
  if (offset === SEGMENT_HEADER) return position - SEGMENT_HEADER;
  if (offset % page === PAGE_HEADER) return position - PAGE_HEADER;
  return position;
}

/**
 * Asks a primary whether it can tell WAL positions the way `COMMIT_WITH_POSITION` asks (a managed
 * PostgreSQL may not: Aurora refuses the WAL functions, a role may be denied them).
 */
export const POSITION_PROBE =
  'SELECT txid_current_if_assigned() AS xid, p::text AS position, ' +
  "(pg_walfile_name_offset(p)).file_offset AS offset, current_setting('wal_block_size')::int AS page " +
  'FROM pg_current_wal_insert_lsn() AS p';

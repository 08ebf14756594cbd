/**
 * Figures derived from the measured CPU per request (not measured themselves): what one more
 * joined `@Transactional()` call and one more independent session cost a request.
 */
import { DEPTH, FANOUT } from './shared.js';

/** CPU µs per request of `variant` on endpoint `path` (median of rounds), if measured. */
export type CpuOf = (variant: string, path: string) => number | undefined;

const fmt = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '–');
const signed = (value: number) => (Number.isFinite(value) && value >= 0 ? '+' : '') + fmt(value);

/** CPU per joined call: /deep (DEPTH calls, one query each) less /read (one query), per call. */
export function perJoinedCall(cpu: CpuOf, variant: string): number {
  return ((cpu(variant, 'deep') ?? NaN) - (cpu(variant, 'read') ?? NaN)) / (DEPTH - 1);
}

/** CPU per independent session: /fanout (FANOUT sessions, one query each) less /noop, per session. */
export function perIndependentSession(cpu: CpuOf, variant: string): number {
  return ((cpu(variant, 'fanout') ?? NaN) - (cpu(variant, 'noop') ?? NaN)) / FANOUT;
}

/** The markdown section of the derived figures, one row per variant. */
export function perCallTable(
  variants: string[],
  cpu: CpuOf,
  label: (variant: string) => string,
): string[] {
  const joined = (v: string) => perJoinedCall(cpu, v);
  const independent = (v: string) => perIndependentSession(cpu, v);
  if (!variants.some((v) => Number.isFinite(joined(v)) || Number.isFinite(independent(v))))
    return [];
  const lines = [
    '### Per call (derived from the CPU table above, not measured on their own)',
    '',
    `- joined call = (CPU/req of /deep − CPU/req of /read) / ${DEPTH - 1}: one more nested ` +
      '`@Transactional()` (REQUIRED) call that joins the transaction, with its one SELECT by ' +
      'primary key (baseline and request-scope: one more plain async call on the same manager).',
    `- independent session = (CPU/req of /fanout − CPU/req of /noop) / ${FANOUT}: one more ` +
      'session with its own connection and transaction (BEGIN, one query, COMMIT).',
    '- "over baseline" subtracts the same figure of `baseline` (hand-written, no context): what ' +
      'the propagation machinery adds per call. Differences of CPU medians: a few µs are noise.',
    '',
    '| variant | µs per joined call | over baseline | µs per independent session | over baseline |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const v of variants) {
    lines.push(
      `| ${label(v)} | ${fmt(joined(v))} | ${signed(joined(v) - joined('baseline'))} | ` +
        `${fmt(independent(v))} | ${signed(independent(v) - independent('baseline'))} |`,
    );
  }
  lines.push('');
  return lines;
}

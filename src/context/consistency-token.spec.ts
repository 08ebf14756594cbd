import { decodeToken, encodeToken } from './consistency-token.js';
import { committedPosition, formatLsn, parseLsn } from '../session/wal-position.js';

describe('consistency tokens', () => {
  it('WAL positions: parsed, compared as numbers past 2^53, written back as PostgreSQL writes them', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')! > parseLsn('FFFFFFFF/FFFFFFFE')!).toBe(true);
    expect(parseLsn('1/0')! > parseLsn('0/FFFFFFFF')!).toBe(true);
    expect(formatLsn(parseLsn('16/b374d848')!)).toBe('16/B374D848');
    for (const bad of ['', '16', '16/', '/1', 'x/1', '123456789/1', '1/2/3', ' 1/2', 1, null]) {
      expect(parseLsn(bad)).toBeUndefined();
    }
  });

  it('tokens: one entry per data source, names encoded, the furthest position of a name kept', () => {
    const positions = new Map([
      ['default', parseLsn('1/A')!],
      ['a&b=c', parseLsn('2/B')!],
    ]);
    const token = encodeToken(positions)!;
    expect(token).toBe('default=1/A&a%26b%3Dc=2/B');
    expect(token).not.toMatch(/[,; "\\]/); // a cookie value as it is
    expect(decodeToken(token)).toEqual(positions);
    expect(decodeToken('default=1/A&default=3/0&default=2/0')).toEqual(
      new Map([['default', parseLsn('3/0')!]]),
    );
    expect(encodeToken(new Map())).toBeUndefined();
    for (const bad of [
      '',
      'default',
      'default=',
      '=1/2',
      'default=1/2&',
      '%E0%A4%A=1/2',
      'x'.repeat(5000),
      7,
    ]) {
      expect(decodeToken(bad)).toBeUndefined();
    }
  });

  it("a COMMIT's position counts only when the transaction wrote and committed", () => {
    const results = (wrote: boolean, command: string, position = '0/3000148', offset = 328) => [
      { command: 'SELECT', rows: [{ wrote }] },
      { command, rows: [] },
      { command: 'SELECT', rows: [{ position, offset, page: 8192 }] },
    ];
    expect(committedPosition(results(true, 'COMMIT'))).toBe(parseLsn('0/3000148'));
    // Past a page's header (the commit ended the page before): where the record ended.
    expect(committedPosition(results(true, 'COMMIT', '0/302A018', 0x2a018))).toBe(
      parseLsn('0/302A000'),
    );
    // Past a segment's first page's (longer) header.
    expect(committedPosition(results(true, 'COMMIT', '0/4000028', 40))).toBe(parseLsn('0/4000000'));
    // 40 bytes into a page that does not start a segment: a record's end, kept.
    expect(committedPosition(results(true, 'COMMIT', '0/3002028', 0x2028))).toBe(
      parseLsn('0/3002028'),
    );
    expect(committedPosition(results(false, 'COMMIT'))).toBeUndefined();
    expect(committedPosition(results(true, 'ROLLBACK'))).toBeUndefined();
    expect(committedPosition(undefined)).toBeUndefined();
    expect(committedPosition([{}])).toBeUndefined();
  });
});

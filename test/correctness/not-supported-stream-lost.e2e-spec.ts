import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, type Repository } from 'typeorm';
import {
  Propagation,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { closeApp, HANG_MS, insertRows, sleep, within } from '../correctness/support-b.js';

/**
 * docs/sessions.md "When the connection is lost": a lost connection never leaves a stream waiting,
 * and in a NOT_SUPPORTED block the statement that meets the dead connection fails with
 * ConnectionLostError, the dead connection dropped. A NOT_SUPPORTED block inside a unit reads
 * through the library's bounded manager (src/session/bounded-manager.ts): a query-builder stream
 * of that block whose connection was killed mid-read hung on PostgreSQL (pg-query-stream waits for
 * the answer to closing its cursor: no 'error', no 'close') and kept its connection (found by the
 * review of the stream fix).
 */
let engine: Engine;

/** Marks the stream's SQL, so that only its connection is killed. */
const MARKER = 'not-supported-stream-marker';

/** Kills, from a connection of its own, the server connection running the stream's query. */
async function killStreamConnection(e: Engine): Promise<void> {
  const side = new DataSource({ ...e.options, poolSize: 1, logging: false });
  await side.initialize();
  try {
    if (e.name === 'postgres') {
      await side.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%${MARKER}%'`,
      );
    } else {
      const rows: Array<{ id: number | string }> = await side.query(
        `SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE '%${MARKER}%'`,
      );
      for (const { id } of rows) await side.query(`KILL ${Number(id)}`).catch(() => undefined);
    }
  } finally {
    await side.destroy();
  }
}

@Injectable()
class Exporter {
  constructor(@InjectRepository(Example) private readonly examples: Repository<Example>) {}

  /** Streams every row in a NOT_SUPPORTED block; the connection is killed after the first row. */
  @Transactional(Propagation.NOT_SUPPORTED)
  async readWhileKilled(): Promise<number> {
    const stream = await this.examples
      .createQueryBuilder('e')
      .where(`e.text <> '${MARKER}'`)
      .stream();
    let rows = 0;
    for await (const _row of stream) {
      rows++;
      if (rows === 1) {
        await killStreamConnection(engine);
        await sleep(300);
      }
    }
    return rows;
  }
}

describe.each(engines)('a NOT_SUPPORTED stream whose connection dies ($name)', (e) => {
  let t: TestApp | undefined;

  beforeAll(async () => {
    engine = e;
    t = await createTestApp(e, {
      imports: [TypeOrmContextModule.forFeature([Example])],
      providers: [Exporter],
    });
    await insertRows(t.dataSource, 20000);
  });

  afterAll(() => closeApp(t, e));

  it('fails (it never hangs) and the pool recovers', async () => {
    const factory = t!.app.get(SessionFactory);
    const exporter = t!.app.get(Exporter);
    const outcome = await within(
      HANG_MS,
      'the NOT_SUPPORTED stream after its connection was killed',
      factory.runInNewContext(() => exporter.readWhileKilled()),
    ).then(
      (rows) => ({ rows }),
      (error: Error) => ({ error }),
    );
    // Either every row had come before the kill (MariaDB sends the whole result at once) or the
    // stream failed with ConnectionLostError; never a hang.
    if ('error' in outcome) expect(outcome.error.name).toBe('ConnectionLostError');
    else expect(outcome.rows).toBe(20000);
    // Later work gets a live connection.
    await expect(t!.rows()).resolves.toBe(20000);
    await t!.expectClean();
  });
});

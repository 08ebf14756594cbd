import type { Readable } from 'node:stream';
import type { EntityManager } from 'typeorm';
import {
  ConnectionLostError,
  Propagation,
  SessionContext,
  SessionFactory,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { closeApp, HANG_MS, readAll, within } from './support-b.js';

/**
 * A stream whose connection dies after the server sent its last row and CommandComplete, before
 * ReadyForQuery (pg-cursor closes its portal then and waits a round trip for the answer): the
 * cursor, already 'done', ignores the driver's error and never calls back, so the stream neither
 * ends nor fails. Found by the randomized test (a NESTED block's stream, the connection killed).
 */
const postgres = engines.find((engine) => engine.name === 'postgres')!;

/** Cuts `stream`'s socket right after its cursor read CommandComplete (deterministically). */
function cutAfterCommandComplete(stream: Readable): void {
  // pg-query-stream hands the client its cursor's handlers, bound: the client calls the stream's.
  const query = stream as unknown as Record<string, unknown> & { cursor: { connection: Socketed } };
  const original = query.handleCommandComplete as (message: unknown) => void;
  query.handleCommandComplete = (message: unknown) => {
    original(message);
    query.cursor.connection.stream.destroy();
  };
}

/** Cuts `stream`'s socket as its first row arrives, while the cursor waits for the rest. */
function cutAtFirstRow(stream: Readable): void {
  const query = stream as unknown as Record<string, unknown> & { cursor: { connection: Socketed } };
  const original = query.handleDataRow as (message: unknown) => void;
  let cut = false;
  query.handleDataRow = (message: unknown) => {
    original(message);
    if (cut) return;
    cut = true;
    query.cursor.connection.stream.destroy();
  };
}

type Socketed = { stream: { destroy(): void } };

const manyRows = (manager: EntityManager) =>
  manager
    .createQueryBuilder()
    .select('s.n', 'n')
    .from('(SELECT generate_series(1, 1000) AS n)', 's')
    .stream();

const oneRow = (manager: EntityManager) =>
  manager.createQueryBuilder().select('s.n', 'n').from('(SELECT 1 AS n)', 's').stream();

describe('a stream whose connection dies between its last row and ReadyForQuery (postgres)', () => {
  let t: TestApp | undefined;
  let factory: SessionFactory;

  beforeEach(async () => {
    t = await createTestApp(postgres, { poolSize: 2 });
    factory = t.app.get(SessionFactory);
  });

  afterEach(() => closeApp(t, postgres));

  it('fails with ConnectionLostError instead of hanging, and the unit rolls back', async () => {
    const unit = factory.atomic(async (manager) => {
      await manager.query(`INSERT INTO example (text) VALUES ('before')`);
      const rows = await oneRow(manager);
      cutAfterCommandComplete(rows);
      await readAll(rows);
    });
    await expect(within(HANG_MS, 'the unit', unit)).rejects.toBeInstanceOf(ConnectionLostError);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
    // The pool gave the dead connection up: the next unit runs.
    await factory.atomic((manager) => manager.query(`INSERT INTO example (text) VALUES ('after')`));
    expect(await t!.texts()).toEqual(['after']);
  });

  it('in a NESTED block with statements queued behind the stream, everything settles', async () => {
    const settled: string[] = [];
    const context = t!.app.get(SessionContext);
    const unit = factory.atomic(() =>
      context.atomic(
        async (manager) => {
          const rows = await oneRow(manager);
          cutAfterCommandComplete(rows);
          const behind = [1, 2].map((k) =>
            manager.query(`INSERT INTO example (text) VALUES ('behind ${k}')`).then(
              () => settled.push('ok'),
              (error: Error) => settled.push(error.name),
            ),
          );
          await Promise.all([readAll(rows), ...behind]);
        },
        { propagation: Propagation.NESTED },
      ),
    );
    await expect(within(HANG_MS, 'the unit', unit)).rejects.toBeInstanceOf(ConnectionLostError);
    expect(settled).toEqual(['ConnectionLostError', 'ConnectionLostError']);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
  });

  it('mid-read (the stream fails, and closing its cursor would wait for the dead server), the unit fails instead of hanging', async () => {
    const unit = factory.atomic(async (manager) => {
      await manager.query(`INSERT INTO example (text) VALUES ('before')`);
      const rows = await manyRows(manager);
      cutAtFirstRow(rows);
      await readAll(rows);
    });
    await expect(within(HANG_MS, 'the unit', unit)).rejects.toBeInstanceOf(ConnectionLostError);
    expect(await t!.rows()).toBe(0);
    await t!.expectClean();
  });
});

// Review: every span of the OpenTelemetry subpath ends exactly once, with the right status,
// error.type, outcome and db.operation.name, whatever way the work ends: a pool wait that times
// out, a connection the server killed mid-transaction, a failed COMMIT (PostgreSQL deferred
// constraint), a block that throws synchronously, two blocks at once on one session, a client that
// disconnects mid-handler, a unit that ends while a block it started still runs. And the pool
// metrics: one use_time per wait_time (every take is given back), timeouts and commit/rollback
// counters right. Real SDK, real databases (killed with pg_terminate_backend / KILL).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Injectable } from '@nestjs/common';
import { metrics } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { SessionContext, SessionFactory, Transactional, Propagation } from '../../src/index.js';
import { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { backendId, type Engine, engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { metering, tracing } from './otel-sdk.js';

const { exporter, counter } = tracing();
const { reader } = metering(true);
const instrumentation = new TypeOrmContextInstrumentation();

let engine: Engine;
let killer: DataSource;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class Blocks {
  constructor(
    private readonly sessions: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Transactional()
  async write(text: string): Promise<void> {
    await this.sessions.session().insert(Example, { text });
  }

  @Transactional()
  async hold(seconds: number): Promise<void> {
    await this.sessions.session().query(engine.sleepSql(seconds));
  }

  @Transactional()
  syncThrow(): Promise<void> {
    throw new Error('thrown synchronously');
  }

  @Transactional()
  async killed(): Promise<void> {
    await this.sessions.session().insert(Example, { text: 'before kill' });
    const id = await backendId(engine, this.sessions.session());
    await killer.query(
      engine.name === 'postgres' ? `SELECT pg_terminate_backend(${id})` : `KILL ${id}`,
    );
    await this.sessions.session().insert(Example, { text: 'after kill' });
  }

  @Transactional()
  async slow(): Promise<void> {
    await this.sessions.session().insert(Example, { text: 'slow 1' });
    await sleep(300);
    await this.sessions.session().insert(Example, { text: 'slow 2' });
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async deferredNew(): Promise<void> {
    await this.sessions.session().query('INSERT INTO otelr_deferred (id, ref) VALUES (1, 999)');
  }
}

@Controller()
class BlocksController {
  constructor(
    private readonly blocks: Blocks,
    private readonly sessions: SessionContext,
  ) {}

  @Get('write')
  async write(): Promise<string> {
    await this.blocks.write('w');
    return 'ok';
  }

  @Get('hold')
  async hold(): Promise<string> {
    await this.blocks.hold(1);
    return 'ok';
  }

  @Get('sync-throw')
  async syncThrow(): Promise<string> {
    await this.blocks.syncThrow().catch(() => undefined);
    return 'ok';
  }

  @Get('killed')
  async killed(): Promise<string> {
    await this.blocks.killed();
    return 'ok';
  }

  @Get('two-at-once')
  async twoAtOnce(): Promise<string> {
    await Promise.all([this.blocks.write('a'), this.blocks.write('b')]);
    return 'ok';
  }

  @Get('abort')
  async abort(): Promise<string> {
    await this.blocks.write('abort 1');
    await sleep(400);
    await this.blocks.write('abort 2');
    return 'ok';
  }

  @Get('unit-ends-first')
  async unitEndsFirst(): Promise<string> {
    await this.sessions.session().insert(Example, { text: 'unit' });
    void this.blocks.slow().catch(() => undefined);
    return 'ok';
  }

  @Get('deferred')
  async deferred(): Promise<string> {
    await this.sessions.session().query('INSERT INTO otelr_deferred (id, ref) VALUES (1, 999)');
    return 'ok';
  }

  @Get('deferred-new')
  async deferredNew(): Promise<string> {
    await this.blocks.deferredNew().catch(() => undefined);
    return 'ok';
  }
}

/** This library's finished spans. */
function ours(): ReadableSpan[] {
  return exporter
    .getFinishedSpans()
    .filter((span) => span.instrumentationScope.name === 'nestjs-typeorm-context');
}

function named(name: string): ReadableSpan[] {
  return ours().filter((span) => span.name === name);
}

/** Waits for the unit span `name`, then every span started must have ended exactly once. */
async function settled(name: string): Promise<ReadableSpan> {
  await eventually(() => named(name).length > 0).catch((error: Error) => {
    throw new Error(
      `${error.message}; finished: ${ours()
        .map((s) => s.name)
        .join(', ')}`,
    );
  });
  await eventually(() => counter.open().length === 0).catch((error: Error) => {
    throw new Error(`${error.message}; open: ${counter.open().join(', ')}`);
  });
  expect(counter.endedTwice()).toEqual([]);
  return named(name)[0]!;
}

const PREFIX = 'nestjs_typeorm_context';

for (const current of engines) {
  describe(`every span ends once, right attributes (${current.name})`, () => {
    let app: TestApp;
    beforeAll(async () => {
      engine = current;
      killer = await new DataSource({ ...current.options }).initialize();
      app = await createTestApp(current, {
        controllers: [BlocksController],
        providers: [Blocks],
        poolSize: 1,
        context: { acquireTimeout: 300 },
      });
    });
    afterAll(async () => {
      await app.close();
      await killer.destroy();
    });
    let useTimes = 0;
    beforeEach(async () => {
      exporter.reset();
      counter.reset();
      useTimes = await reader.count('db.client.connection.use_time');
    });
    afterEach(async () => {
      await app.expectClean();
      // Every connection taken is given back: one use_time recording per successful take.
      const taken = named('connection.acquire default').filter((span) => span.status.code !== 2);
      expect(await reader.count('db.client.connection.use_time')).toBe(useTimes + taken.length);
    });

    it('a pool wait that times out: connection span ERROR timed_out, the block rollback-only, a timeout counted', async () => {
      const timeoutsBefore = await reader.sum('db.client.connection.timeouts');
      const holding = app
        .http()
        .get('/hold')
        .then((response) => response.status);
      await eventually(() => named('connection.acquire default').length > 0);
      await app.http().get('/write').expect(500);
      expect(await holding).toBe(200);
      await settled('unit BlocksController.write()');
      const timedOut = named('connection.acquire default').filter(
        (span) => span.attributes[`${PREFIX}.timed_out`] === true,
      );
      expect(timedOut).toHaveLength(1);
      expect(timedOut[0]!.status.code).toBe(2);
      expect(timedOut[0]!.attributes['error.type']).toBe('ConnectionAcquireTimeoutError');
      const [block] = named('transaction.join Blocks.write()');
      expect(block!.attributes[`${PREFIX}.outcome`]).toBe('rollback-only');
      expect(block!.attributes['error.type']).toBe('ConnectionAcquireTimeoutError');
      const [unit] = named('unit BlocksController.write()');
      expect(unit!.attributes[`${PREFIX}.outcome`]).toBe('rolled back');
      expect(await reader.sum('db.client.connection.timeouts')).toBe(timeoutsBefore + 1);
    });

    it('a block that throws synchronously: its span ends once, ERROR', async () => {
      await app.http().get('/sync-throw'); // 500: the unit is rollback-only (RollbackOnlyError)
      await settled('unit BlocksController.syncThrow()');
      const [block] = named('transaction.join Blocks.syncThrow()');
      expect(block!.status.code).toBe(2);
      expect(block!.attributes['error.type']).toBe('Error');
      expect(block!.attributes[`${PREFIX}.outcome`]).toBe('rollback-only');
    });

    it('a connection killed mid-transaction: the block ERROR, the take given back (use_time recorded)', async () => {
      await app.http().get('/killed').expect(500);
      const unit = await settled('unit BlocksController.killed()');
      const [block] = named('transaction.join Blocks.killed()');
      expect(block!.status.code).toBe(2);
      expect(block!.attributes[`${PREFIX}.outcome`]).toBe('rollback-only');
      expect(unit.attributes[`${PREFIX}.outcome`]).not.toBe('committed');
      expect(unit.endTime).toBeDefined();
    });

    it('two blocks at once on one session: two join spans under the unit, each ends once', async () => {
      await app.http().get('/two-at-once').expect(200);
      const unit = await settled('unit BlocksController.twoAtOnce()');
      const blocks = named('transaction.join Blocks.write()');
      expect(blocks).toHaveLength(2);
      for (const block of blocks) {
        expect(block.parentSpanContext?.spanId).toBe(unit.spanContext().spanId);
        expect(block.attributes[`${PREFIX}.outcome`]).toBe('joined');
      }
    });

    it('a client that disconnects mid-handler: the unit and its blocks end once', async () => {
      const server = app.app.getHttpServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const call = httpRequest({ host: '127.0.0.1', port, path: '/abort' });
        call.on('error', () => undefined);
        call.end();
        await eventually(() => named('transaction.join Blocks.write()').length > 0);
        call.destroy();
        await settled('unit BlocksController.abort()');
        await sleep(500); // the handler's second block, after the disconnect
        expect(counter.open()).toEqual([]);
        expect(counter.endedTwice()).toEqual([]);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('a unit that ends while a block it started still runs: every span ends once', async () => {
      await app.http().get('/unit-ends-first').expect(200);
      await settled('unit BlocksController.unitEndsFirst()');
      await eventually(() => named('transaction.join Blocks.slow()').length > 0);
      expect(counter.open()).toEqual([]);
      expect(counter.endedTwice()).toEqual([]);
    });

    if (current.name === 'postgres') {
      describe('a failed COMMIT (deferred constraint)', () => {
        beforeAll(async () => {
          await killer.query('DROP TABLE IF EXISTS otelr_deferred');
          await killer.query(
            'CREATE TABLE otelr_deferred (id int PRIMARY KEY, ref int REFERENCES otelr_deferred (id) DEFERRABLE INITIALLY DEFERRED)',
          );
        });

        it("the unit's: outcome error, ERROR with error.type, counted as a rollback", async () => {
          const unitScope = { [`${PREFIX}.scope`]: 'unit' };
          const commits = await reader.sum(`${PREFIX}.commits`, unitScope);
          const rollbacks = await reader.sum(`${PREFIX}.rollbacks`, unitScope);
          await app.http().get('/deferred').expect(500);
          const unit = await settled('unit BlocksController.deferred()');
          expect(unit.attributes[`${PREFIX}.outcome`]).toBe('error');
          expect(unit.status.code).toBe(2);
          expect(unit.attributes['error.type']).toBeDefined();
          expect(unit.attributes['error.type']).not.toBe('_OTHER');
          expect(await reader.sum(`${PREFIX}.commits`, unitScope)).toBe(commits);
          expect(await reader.sum(`${PREFIX}.rollbacks`, unitScope)).toBe(rollbacks + 1);
        });

        it("a REQUIRES_NEW block's: outcome rolled back, db.operation.name ROLLBACK, ERROR", async () => {
          const blockScope = { [`${PREFIX}.scope`]: 'block' };
          const rollbacks = await reader.sum(`${PREFIX}.rollbacks`, blockScope);
          await app.http().get('/deferred-new').expect(200);
          // The handler's own unit never used a data source: no unit span.
          const block = await settled('transaction.begin Blocks.deferredNew()');
          expect(block!.attributes[`${PREFIX}.outcome`]).toBe('rolled back');
          expect(block!.attributes['db.operation.name']).toBe('ROLLBACK');
          expect(block!.status.code).toBe(2);
          expect(await reader.sum(`${PREFIX}.rollbacks`, blockScope)).toBe(rollbacks + 1);
        });
      });
    }
  });
}

afterAll(() => {
  instrumentation.disable();
  metrics.disable();
});

// The OpenTelemetry subpath with the real SDK, the real pg / mysql2 and http instrumentations
// and a real server: the span tree of one request with two services, a NESTED block and two
// parallel factory sessions, every driver query span under the transaction that sent it; the
// pool metrics and counters; nothing traced once disabled. Plain Node (not Jest), so that the
// instrumentations hook `require()` as in an app. Run by `npm test` after the Jest suites.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { MySQL2Instrumentation } from '@opentelemetry/instrumentation-mysql2';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { TypeOrmContextInstrumentation } from 'nestjs-typeorm-context/opentelemetry';
import { database } from './database.mjs';
import { decorateMethod, otelSdk, parentId, renderTree } from './otel-support.mjs';

// As an app's tracing.ts does: before the framework and the drivers load.
const instrumentation = new TypeOrmContextInstrumentation();
const { exporter, reader } = otelSdk([
  new HttpInstrumentation(),
  new PgInstrumentation(),
  new MySQL2Instrumentation(),
  instrumentation,
]);

const { Controller, Get, Inject, Injectable, Module } = await import('@nestjs/common');
const { NestFactory } = await import('@nestjs/core');
const { TypeOrmModule } = await import('@nestjs/typeorm');
const { EntitySchema } = await import('typeorm');
const ntc = await import('nestjs-typeorm-context');
const { Propagation, SessionContext, SessionFactory, Transactional, TypeOrmContextModule } = ntc;

const Order = new EntitySchema({
  name: 'OtelOrder',
  tableName: 'otel_order',
  columns: { id: { type: Number, primary: true, generated: true }, text: { type: String } },
});

class OrdersService {
  constructor(sessions) {
    this.sessions = sessions;
  }
  async place(text) {
    await this.sessions.session().insert(Order, { text });
  }
  async risky(text) {
    await this.sessions.session().insert(Order, { text });
    throw new Error('the nested block fails');
  }
}
Inject(SessionContext)(OrdersService, undefined, 0);
Injectable()(OrdersService);
decorateMethod(OrdersService, 'place', Transactional());
decorateMethod(OrdersService, 'risky', Transactional(Propagation.NESTED));

class AuditService {
  constructor(sessions) {
    this.sessions = sessions;
  }
  async record(text) {
    await this.sessions.session().insert(Order, { text: `audit ${text}` });
  }
}
Inject(SessionContext)(AuditService, undefined, 0);
Injectable()(AuditService);
decorateMethod(AuditService, 'record', Transactional());

class OrdersController {
  constructor(orders, audit, factory) {
    this.orders = orders;
    this.audit = audit;
    this.factory = factory;
  }
  async place() {
    await this.orders.place('order');
    await this.audit.record('order');
    await this.orders.risky('dropped').catch(() => undefined);
    await Promise.all(
      ['parallel 1', 'parallel 2'].map((text) =>
        this.factory.atomic((manager) => manager.insert(Order, { text })),
      ),
    );
    return 'ok';
  }
  async fail() {
    await this.orders.place('lost');
    throw new Error('the handler fails');
  }
}
Inject(OrdersService)(OrdersController, undefined, 0);
Inject(AuditService)(OrdersController, undefined, 1);
Inject(SessionFactory)(OrdersController, undefined, 2);
Controller()(OrdersController);
decorateMethod(OrdersController, 'place', Get('place'));
decorateMethod(OrdersController, 'fail', Get('fail'));

const engines = [{ name: 'PostgreSQL', system: 'postgresql' }];
if (process.env.MYSQL_URL) engines.push({ name: 'MariaDB', system: 'mysql' });

for (const engine of engines) {
  describe(`OpenTelemetry (${engine.name})`, () => {
    let db;
    let app;
    let base;

    before(async () => {
      db =
        engine.system === 'postgresql'
          ? await database()
          : { url: process.env.MYSQL_URL, stop: async () => undefined };
      const type = engine.system === 'postgresql' ? 'postgres' : 'mysql';
      class AppModule {}
      Module({
        imports: [
          TypeOrmModule.forRoot({
            type,
            url: db.url,
            entities: [Order],
            synchronize: true,
            logging: false,
          }),
          TypeOrmContextModule.forRoot(),
        ],
        controllers: [OrdersController],
        providers: [OrdersService, AuditService],
      })(AppModule);
      app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
      await app.listen(0, '127.0.0.1');
      base = await app.getUrl();
      base = base.replace('[::1]', '127.0.0.1');
      await app
        .get(SessionFactory)
        .runInNewContext(() => app.get(SessionContext).session().clear(Order));
      exporter.reset();
    });
    after(async () => {
      await app?.close();
      await db?.stop();
    });

    it('one request: the unit, its blocks, the savepoint and the factory sessions, each query under its transaction', async () => {
      exporter.reset();
      const response = await fetch(`${base}/place`);
      assert.equal(response.status, 200);
      await waitFor(() => exporter.getFinishedSpans().some((span) => span.name.startsWith('GET')));
      const spans = exporter.getFinishedSpans();
      const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]));
      const parent = (span) => byId.get(parentId(span));
      const named = (prefix) => spans.filter((span) => span.name.startsWith(prefix));
      const [server] = spans.filter((span) => span.name.startsWith('GET'));
      assert.ok(server, 'the http server span');
      const traceId = server.spanContext().traceId;
      assert.ok(
        spans.every((span) => span.spanContext().traceId === traceId),
        'one trace',
      );

      const [unit] = named('unit ');
      assert.equal(unit.name, 'unit OrdersController.place()');
      assert.equal(parent(unit), server);
      assert.equal(unit.attributes['nestjs_typeorm_context.unit.kind'], 'http');
      assert.equal(unit.attributes['nestjs_typeorm_context.outcome'], 'committed');

      const place = named('transaction.join OrdersService.place()')[0];
      const record = named('transaction.join AuditService.record()')[0];
      const risky = named('transaction.savepoint OrdersService.risky()')[0];
      const atomics = named('transaction.begin sessionFactory.atomic()');
      for (const block of [place, record, risky, ...atomics])
        assert.equal(parent(block), unit, block.name);
      assert.equal(atomics.length, 2);
      assert.equal(
        place.attributes['db.system.name'],
        engine.system === 'postgresql' ? 'postgresql' : 'mysql',
      );
      assert.equal(place.attributes['nestjs_typeorm_context.outcome'], 'joined');
      assert.equal(risky.attributes['nestjs_typeorm_context.outcome'], 'rolled back to savepoint');
      assert.equal(risky.status.code, 2);
      for (const atomic of atomics) {
        assert.equal(atomic.attributes['db.operation.name'], 'COMMIT');
        assert.equal(atomic.attributes['nestjs_typeorm_context.outcome'], 'committed');
        assert.ok(atomic.attributes['server.port'] > 0);
      }
      const [savepoint] = named('SAVEPOINT typeorm_');
      assert.equal(parent(savepoint), risky);
      assert.equal(savepoint.attributes['db.operation.name'], 'ROLLBACK TO SAVEPOINT');

      // The driver's spans: each INSERT under the block that sent it.
      const queries = spans.filter(
        (span) => span.attributes['db.query.text'] ?? span.attributes['db.statement'],
      );
      const text = (span) =>
        String(span.attributes['db.query.text'] ?? span.attributes['db.statement']);
      const inserts = queries.filter((span) => /^INSERT/i.test(text(span)));
      assert.equal(inserts.length, 5, renderTree(spans).join('\n'));
      const insertParents = inserts.map((span) => parent(span).name).sort();
      assert.deepEqual(insertParents, [
        'SAVEPOINT typeorm_1',
        'transaction.begin sessionFactory.atomic()',
        'transaction.begin sessionFactory.atomic()',
        'transaction.join AuditService.record()',
        'transaction.join OrdersService.place()',
      ]);
      // The unit's COMMIT under the unit; each factory session's own BEGIN/COMMIT under its block.
      const commits = queries.filter((span) => /^COMMIT/i.test(text(span)));
      assert.deepEqual(commits.map((span) => parent(span).name).sort(), [
        'transaction.begin sessionFactory.atomic()',
        'transaction.begin sessionFactory.atomic()',
        'unit OrdersController.place()',
      ]);
      // Every connection taken is a span under whatever took it.
      const takes = named('connection.acquire default');
      assert.equal(takes.length, 3);
      assert.deepEqual(takes.map((span) => parent(span).name).sort(), [
        'transaction.begin sessionFactory.atomic()',
        'transaction.begin sessionFactory.atomic()',
        'transaction.join OrdersService.place()',
      ]);
      if (process.env.PRINT_TRACE) console.log(renderTree(spans, spanLine).join('\n'));
      assert.equal(await rows(app), 4);
    });

    it('a request that fails: the unit rolled back, its ROLLBACK under it', async () => {
      exporter.reset();
      const response = await fetch(`${base}/fail`);
      assert.equal(response.status, 500);
      await waitFor(() => exporter.getFinishedSpans().some((span) => span.name.startsWith('GET')));
      const spans = exporter.getFinishedSpans();
      const [unit] = spans.filter((span) => span.name.startsWith('unit '));
      assert.equal(unit.attributes['nestjs_typeorm_context.outcome'], 'rolled back');
      const rollback = spans.find((span) =>
        /^ROLLBACK$/i.test(
          String(span.attributes['db.query.text'] ?? span.attributes['db.statement'] ?? ''),
        ),
      );
      assert.ok(rollback, 'the ROLLBACK was traced');
      assert.equal(parentId(rollback), unit.spanContext().spanId);

      assert.equal(await rows(app), 4, 'nothing of the failed request stayed');
    });

    it('metrics: connection wait and use times, counts by state, commits and rollbacks', async () => {
      const { resourceMetrics } = await reader.collect();
      const all = resourceMetrics.scopeMetrics
        .filter((scope) => scope.scope.name === 'nestjs-typeorm-context')
        .flatMap((scope) => scope.metrics);
      const metric = (name) => all.find((m) => m.descriptor.name === name);
      const points = (name) => metric(name)?.dataPoints ?? [];
      const system = engine.system;
      const pool = (point) =>
        point.attributes['db.system.name'] === system
          ? point.attributes['db.client.connection.pool.name']
          : undefined;
      assert.ok(
        points('db.client.connection.wait_time').some(
          (p) => pool(p) === 'default' && p.value.count >= 3,
        ),
      );
      assert.ok(
        points('db.client.connection.use_time').some(
          (p) => pool(p) === 'default' && p.value.count >= 3,
        ),
      );
      const states = points('db.client.connection.count').filter((p) => pool(p) === 'default');
      assert.deepEqual(states.map((p) => p.attributes['db.client.connection.state']).sort(), [
        'idle',
        'used',
      ]);
      assert.ok(
        states.find((p) => p.attributes['db.client.connection.state'] === 'idle').value >= 1,
      );
      assert.ok(
        points('db.client.connection.max').some((p) => pool(p) === 'default' && p.value === 10),
      );
      const sum = (name, scope) =>
        points(name)
          .filter((p) => p.attributes['nestjs_typeorm_context.scope'] === scope)
          .filter((p) => scope === 'unit' || p.attributes['db.system.name'] === system)
          .reduce((total, p) => total + p.value, 0);
      assert.ok(sum('nestjs_typeorm_context.commits', 'unit') >= 1);
      assert.ok(sum('nestjs_typeorm_context.commits', 'block') >= 2);
      assert.ok(sum('nestjs_typeorm_context.rollbacks', 'unit') >= 1);
    });

    it('disabled, it traces nothing more; enabled again, it does', async () => {
      instrumentation.disable();
      try {
        exporter.reset();
        assert.equal((await fetch(`${base}/place`)).status, 200);
        await waitFor(() =>
          exporter.getFinishedSpans().some((span) => span.name.startsWith('GET')),
        );
        const ours = exporter
          .getFinishedSpans()
          .filter((span) => scopeOf(span) === 'nestjs-typeorm-context');
        assert.deepEqual(
          ours.map((span) => span.name),
          [],
        );
      } finally {
        instrumentation.enable();
      }
      exporter.reset();
      assert.equal((await fetch(`${base}/place`)).status, 200);
      await waitFor(() =>
        exporter.getFinishedSpans().some((span) => span.name.startsWith('unit ')),
      );
      assert.equal(await rows(app), 12);
    });
  });
}

/** The name of the instrumentation that made `span` (SDK 2.x and 1.x). */
function scopeOf(span) {
  return (span.instrumentationScope ?? span.instrumentationLibrary).name;
}

/** The number of orders, read in a context of its own. */
async function rows(app) {
  return app
    .get(SessionFactory)
    .runInNewContext(() => app.get(SessionContext).session().count(Order));
}

/** Waits (briefly) until `done()`: the server span ends just after the response is sent. */
async function waitFor(done) {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(done(), 'waited for the spans');
}

/** How a span shows in the printed tree: its name, and the query of a driver span. */
function spanLine(span) {
  const query = span.attributes['db.query.text'] ?? span.attributes['db.statement'];
  return query ? `${span.name}: ${String(query).slice(0, 60)}` : span.name;
}

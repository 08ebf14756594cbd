// Review of the OpenTelemetry subpath's span tree with the real SDK and the real pg and http
// instrumentations (plain Node: they hook require()), including a unit whose first statement runs
// inside a service's own span (as nestjs-otel's @Span() makes): the unit's span still goes under
// the request's, and the handler's later blocks and the unit's COMMIT under the unit's. The doc's claims under test: a block's work
// runs with its span active; a unit's span is the parent of the blocks and statements of the code
// that runs where the unit began, and of the unit's COMMIT or ROLLBACK; code that starts a span of
// its own keeps it; REQUIRES_NEW, NOT_SUPPORTED, retry attempts, a plain repository with
// plainTypeorm: 'join'. PostgreSQL (DATABASE_URL, or an embedded server).
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { TypeOrmContextInstrumentation } from 'nestjs-typeorm-context/opentelemetry';
import { database } from './database.mjs';
import { decorateMethod, otelSdk, parentId, renderTree } from './otel-support.mjs';

// As an app's tracing.ts does: before the framework and the drivers load.
const { exporter, reader } = otelSdk([
  new HttpInstrumentation(),
  new PgInstrumentation(),
  new TypeOrmContextInstrumentation(),
]);

const { Controller, Get, Inject, Injectable, Module } = await import('@nestjs/common');
const { NestFactory } = await import('@nestjs/core');
const { TypeOrmModule, getRepositoryToken } = await import('@nestjs/typeorm');
const { EntitySchema } = await import('typeorm');
const { Propagation, SessionContext, Transactional, TypeOrmContextModule } =
  await import('nestjs-typeorm-context');

const Note = new EntitySchema({
  name: 'OtelrNote',
  tableName: 'otelr_note',
  columns: { id: { type: Number, primary: true, generated: true }, text: { type: String } },
});

const tracer = trace.getTracer('review-app');

let attempts = 0;

class NotesService {
  constructor(sessions, plain) {
    this.sessions = sessions;
    this.plain = plain;
  }
  async write(text) {
    await this.sessions.session().insert(Note, { text });
  }
  async writeNew(text) {
    await this.sessions.session().insert(Note, { text });
  }
  async outside() {
    await this.sessions.session().query("SELECT 'not supported' AS x");
  }
  async retried() {
    attempts++;
    await this.sessions.session().insert(Note, { text: `attempt ${attempts}` });
    if (attempts === 1)
      await this.sessions
        .session()
        .query("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$");
  }
  /** A service method with a span of its own (as nestjs-otel's @Span() makes one). */
  lookup() {
    return tracer.startActiveSpan('lookup', async (span) => {
      try {
        return await this.sessions.session().query("SELECT 'lookup' AS x");
      } finally {
        span.end();
      }
    });
  }
}
Inject(SessionContext)(NotesService, undefined, 0);
Inject(getRepositoryToken(Note))(NotesService, undefined, 1);
Injectable()(NotesService);
decorateMethod(NotesService, 'write', Transactional());
decorateMethod(NotesService, 'writeNew', Transactional(Propagation.REQUIRES_NEW));
decorateMethod(NotesService, 'outside', Transactional(Propagation.NOT_SUPPORTED));
decorateMethod(
  NotesService,
  'retried',
  Transactional({ propagation: Propagation.REQUIRES_NEW, retry: 2 }),
);

class NotesController {
  constructor(notes, sessions) {
    this.notes = notes;
    this.sessions = sessions;
  }
  async ownSpanFirst() {
    await this.notes.lookup();
    await this.notes.write('after lookup');
    return 'ok';
  }
  async requiresNew() {
    await this.notes.write('in the unit');
    await this.notes.writeNew('own transaction');
    return 'ok';
  }
  async notSupported() {
    await this.notes.write('in the unit');
    await this.notes.outside();
    return 'ok';
  }
  async retry() {
    attempts = 0;
    await this.notes.retried();
    return 'ok';
  }
  async plain() {
    await this.notes.plain.insert({ text: 'plain repository' });
    return 'ok';
  }
}
Inject(NotesService)(NotesController, undefined, 0);
Inject(SessionContext)(NotesController, undefined, 1);
Controller()(NotesController);
decorateMethod(NotesController, 'ownSpanFirst', Get('own-span-first'));
decorateMethod(NotesController, 'requiresNew', Get('requires-new'));
decorateMethod(NotesController, 'notSupported', Get('not-supported'));
decorateMethod(NotesController, 'retry', Get('retry'));
decorateMethod(NotesController, 'plain', Get('plain'));

async function waitFor(probe, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('OpenTelemetry span tree, review (PostgreSQL)', () => {
  let db;
  let app;
  let base;

  before(async () => {
    db = await database();
    class AppModule {}
    Module({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: db.url,
          entities: [Note],
          synchronize: true,
          logging: false,
        }),
        TypeOrmModule.forFeature([Note]),
        TypeOrmContextModule.forRoot({ plainTypeorm: 'join' }),
      ],
      controllers: [NotesController],
      providers: [NotesService],
    })(AppModule);
    app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  after(async () => {
    await app?.close();
    await db?.stop();
  });

  /** GETs `path` and returns the finished spans of its trace, with helpers. */
  async function request(path) {
    exporter.reset();
    const response = await fetch(`${base}${path}`);
    assert.equal(response.status, 200, await response.text());
    await waitFor(() => exporter.getFinishedSpans().some((span) => span.name.startsWith('GET')));
    const spans = exporter.getFinishedSpans();
    const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]));
    const tree = renderTree(spans).join('\n');
    return {
      spans,
      tree,
      parent: (span) => byId.get(parentId(span)),
      named: (prefix) => spans.filter((span) => span.name.startsWith(prefix)),
      query: (text) => {
        const found = spans.filter((span) => span.attributes['db.query.text']?.includes(text));
        assert.equal(found.length, 1, `one query span with ${text}:\n${tree}`);
        return found[0];
      },
    };
  }

  it('REQUIRES_NEW inside a request: its BEGIN, INSERT and COMMIT under its span, under the unit', async () => {
    const { named, parent, query, spans, tree } = await request('/requires-new');
    const [unit] = named('unit ');
    const [block] = named('transaction.begin NotesService.writeNew()');
    assert.ok(parent(block) === unit, tree);
    const own = spans.filter((span) => span.name.startsWith('pg.query') && parent(span) === block);
    assert.deepEqual(
      own.map((span) => span.name.split(/[: ]/)[1]),
      ['START', 'INSERT', 'COMMIT'],
      tree,
    );
  });

  it('NOT_SUPPORTED block: its statement under its transaction.none span', async () => {
    const { named, parent, query, tree } = await request('/not-supported');
    const [none] = named('transaction.none NotesService.outside()');
    assert.ok(none, tree);
    assert.ok(parent(query("'not supported'")) === none, tree);
  });

  it('retry: one transaction.begin span per attempt, each with its own statements, a retry counted', async () => {
    const { named, parent, spans, tree } = await request('/retry');
    const blocks = named('transaction.begin NotesService.retried()');
    assert.deepEqual(
      blocks.map((span) => span.attributes['nestjs_typeorm_context.attempt']).sort(),
      [1, 2],
      tree,
    );
    const [first, second] = blocks.sort(
      (a, b) =>
        a.attributes['nestjs_typeorm_context.attempt'] -
        b.attributes['nestjs_typeorm_context.attempt'],
    );
    assert.equal(first.status.code, 2, tree);
    assert.equal(first.attributes['db.operation.name'], 'ROLLBACK');
    assert.equal(second.attributes['db.operation.name'], 'COMMIT');
    for (const block of [first, second]) {
      const inserts = spans.filter(
        (span) => span.name.startsWith('pg.query:INSERT') && parent(span) === block,
      );
      assert.equal(inserts.length, 1, tree);
    }
    const { resourceMetrics } = await reader.collect();
    const retries = resourceMetrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .filter((metric) => metric.descriptor.name === 'nestjs_typeorm_context.retries')
      .flatMap((metric) => metric.dataPoints)
      .reduce((sum, point) => sum + point.value, 0);
    assert.equal(retries, 1);
  });

  it("plainTypeorm 'join': a plain repository's INSERT in the handler under the unit's span", async () => {
    const { named, parent, query, tree } = await request('/plain');
    const [unit] = named('unit ');
    assert.ok(unit, tree);
    assert.ok(parent(query('INSERT INTO "otelr_note"')) === unit, tree);
  });

  it("a unit begun in a service's own span: the unit's COMMIT is under the unit's span", async () => {
    const { named, parent, query, tree } = await request('/own-span-first');
    const [unit] = named('unit ');
    const [lookup] = named('lookup');
    assert.ok(lookup, tree);
    assert.ok(parent(query('COMMIT')) === unit, `the unit's COMMIT under the unit:\n${tree}`);
  });

  it("a unit begun in a service's own span: the handler's later block is under the unit's span", async () => {
    const { named, parent, tree } = await request('/own-span-first');
    const [unit] = named('unit ');
    const [block] = named('transaction.join NotesService.write()');
    assert.ok(parent(block) === unit, tree);
  });
});

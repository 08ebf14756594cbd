import { Controller, Get, Injectable, Param, Post } from '@nestjs/common';
import {
  type EntitySubscriberInterface,
  EventSubscriber,
  type TransactionCommitEvent,
} from 'typeorm';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import {
  CommitOutcomeUnknownError,
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
} from '../../src/index.js';
import { pair, pauseReplay, resumeReplay, runOn } from '../replicas/replica-app.js';
import { ReplicaItem, where } from '../replicas/replica-item.js';
import { createR22App, positionIn, type R22App, rowsOn } from './r22-app.js';

const HEADER = 'x-ct';

/** What the afterTransactionCommit subscriber writes next (one audit row), if anything. */
const audit: { text?: string } = {};
/** What the beforeCommit hook writes next, if anything. */
const hooked: { text?: string } = {};

@EventSubscriber()
class AuditSubscriber implements EntitySubscriberInterface {
  async afterTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const text = audit.text;
    if (text === undefined) return;
    audit.text = undefined;
    await event.queryRunner.query('INSERT INTO replica_item (text) VALUES ($1)', [text]);
  }
}

@Injectable()
class NestedService {
  constructor(private readonly context: SessionContext) {}

  @Transactional({ propagation: Propagation.NESTED })
  async nested(text: string): Promise<void> {
    await this.context.session().insert(ReplicaItem, { text });
  }
}

@Controller('r22')
class PathsController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly nestedService: NestedService,
    @InjectRepository(ReplicaItem) private readonly plainRepo: Repository<ReplicaItem>,
  ) {}

  @Get('read/:text')
  async read(@Param('text') text: string) {
    return this.factory.atomic(
      async (manager) => ({
        ...(await where(manager)),
        seen: await manager.countBy(ReplicaItem, { text }),
      }),
      { readOnly: true },
    );
  }

  @Post('plain/:text')
  async plain(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  /** Writes and commits midway; then the request's second transaction fails at its COMMIT. */
  @Post('commit-then-deferred-fail/:text')
  async commitThenDeferredFail(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    await this.context.session().query('INSERT INTO r22_deferred (v) VALUES (1), (1)');
    return {};
  }

  /** A failing COMMIT (deferred unique constraint) and nothing else. */
  @Post('deferred-fail/:text')
  async deferredFail(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.session().query('INSERT INTO r22_deferred (v) VALUES (2), (2)');
    return {};
  }

  /** Writes; an afterCommit callback throws (callbackErrors: 'throw'). */
  @Post('callback-throws/:text')
  async callbackThrows(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text });
    this.context.afterCommit(() => {
      throw new Error('afterCommit failed');
    });
    return {};
  }

  /** Writes a marker; an afterCommit callback writes `text` in a unit of its own. */
  @Post('after-commit-unit/:text')
  async afterCommitUnit(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text: `marker-${text}` });
    this.context.afterCommit(() =>
      this.factory.runInNewContext(() => this.context.session().insert(ReplicaItem, { text })),
    );
    return {};
  }

  /** Writes a marker; the afterTransactionCommit subscriber writes `text` (TypeORM's own event). */
  @Post('subscriber/:text')
  async subscriber(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text: `marker-${text}` });
    audit.text = text;
    return {};
  }

  /** Writes a marker; the beforeCommit hook writes `text`. */
  @Post('hook/:text')
  async hook(@Param('text') text: string) {
    await this.context.session().insert(ReplicaItem, { text: `marker-${text}` });
    hooked.text = text;
    return {};
  }

  /** Writes through a sessionFactory.open() session, committed by hand. */
  @Post('open/:text')
  async open(@Param('text') text: string) {
    const session = this.factory.open();
    try {
      await session.manager.insert(ReplicaItem, { text });
      await session.commit();
    } finally {
      await session.close();
    }
    return {};
  }

  /** Writes in a NESTED block (a savepoint) of the request's transaction. */
  @Post('nested/:text')
  async nested(@Param('text') text: string) {
    await this.nestedService.nested(text);
    return {};
  }

  /** Writes through a plain @InjectRepository repository (plainTypeorm: 'join'). */
  @Post('plain-repo/:text')
  async viaPlainRepository(@Param('text') text: string) {
    await this.plainRepo.insert({ text });
    return {};
  }

  /** Writes through a function called in a SELECT. */
  @Post('select-writes/:text')
  async selectWrites(@Param('text') text: string) {
    await this.context.session().query('SELECT r22_write($1)', [text]);
    return {};
  }

  /** Writes through sessionFactory.atomic() (REQUIRES_NEW) in the request. */
  @Post('atomic/:text')
  async atomic(@Param('text') text: string) {
    await this.factory.atomic((manager) => manager.insert(ReplicaItem, { text }));
    return {};
  }
}

describe('Replica review: every path that commits a write moves the token (no stale read for its client)', () => {
  let r: R22App;

  beforeAll(async () => {
    const { primary } = pair();
    await runOn(
      primary,
      'CREATE TABLE IF NOT EXISTS r22_deferred (v int, CONSTRAINT r22_deferred_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)',
    );
    r = await createR22App({
      context: {
        consistency: { header: HEADER },
        callbackErrors: 'throw',
        plainTypeorm: 'join',
        beforeCommit: async (manager) => {
          const text = hooked.text;
          if (text === undefined) return;
          hooked.text = undefined;
          await manager.insert(ReplicaItem, { text });
        },
      },
      subscribers: [AuditSubscriber],
      controllers: [PathsController],
      providers: [NestedService],
    });
    await runOn(
      primary,
      'CREATE OR REPLACE FUNCTION r22_write(t text) RETURNS int LANGUAGE sql AS $$ INSERT INTO replica_item (text) VALUES (t) RETURNING 1 $$',
    );
    await r.replayed();
  });
  afterAll(async () => {
    await resumeReplay();
    await r?.close();
  });
  afterEach(async () => {
    await resumeReplay();
    await r.replayed();
    await r.expectClean();
  });

  /**
   * With the standby's replay paused, `route` writes `text` (committed on the primary); the
   * response's token, carried by the next request, must keep its read off the standby (which has
   * not replayed the write).
   */
  async function writeThenRead(route: string, text: string) {
    await pauseReplay();
    const written = await r.http().post(`/r22/${route}/${text}`);
    const token = written.headers[HEADER] as string | undefined;
    const onPrimary = await rowsOn(pair().primary, text);
    const onReplica = await rowsOn(pair().replica, text);
    const read = await r
      .http()
      .get(`/r22/read/${text}`)
      .set(token ? { [HEADER]: token } : {});
    return { status: written.status, token, onPrimary, onReplica, read: read.body };
  }

  it('control: the request own write', async () => {
    const result = await writeThenRead('plain', 'p-own');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it('a write committed midway (sessionContext.commit()) whose request then fails at its final COMMIT', async () => {
    const result = await writeThenRead('commit-then-deferred-fail', 'p-midway');
    // The first transaction is durable on the primary; the response is an error...
    expect(result).toMatchObject({ status: 500, onPrimary: 1, onReplica: 0 });
    // ...that must still carry the token of what committed (as a handler's failure does): without
    // it, the client's next read runs on the standby that has not replayed the row.
    // The client's next read (carrying what it got) runs on the standby and misses the row.
    expect(result.read).toMatchObject({ seen: 1 });
    expect(result.token).toBeDefined();
  });

  it('a write committed whose afterCommit callback throws (callbackErrors: throw)', async () => {
    const result = await writeThenRead('callback-throws', 'p-callback');
    expect(result).toMatchObject({ status: 500, onPrimary: 1, onReplica: 0 });
    // The client's next read (carrying what it got) runs on the standby and misses the row.
    expect(result.read).toMatchObject({ seen: 1 });
    expect(result.token).toBeDefined();
  });

  it('a failing COMMIT (deferred constraint) moves no token', async () => {
    await pauseReplay();
    const written = await r.http().post('/r22/deferred-fail/p-deferred');
    expect(written.status).toBe(500);
    expect(await rowsOn(pair().primary, 'p-deferred')).toBe(0);
    expect(written.headers[HEADER]).toBeUndefined();
  });

  it("a unit opened in an afterCommit callback: its write is covered by the request's token", async () => {
    const result = await writeThenRead('after-commit-unit', 'p-aftercommit');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ seen: 1 });
  });

  it('an afterTransactionCommit subscriber that writes through its event runner', async () => {
    const result = await writeThenRead('subscriber', 'p-subscriber');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ seen: 1 });
  });

  it('a beforeCommit hook that writes', async () => {
    const result = await writeThenRead('hook', 'p-hook');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it('a sessionFactory.open() session committed in the request', async () => {
    const result = await writeThenRead('open', 'p-open');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it('a NESTED block (savepoint) that wrote', async () => {
    const result = await writeThenRead('nested', 'p-nested');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it("a plain @InjectRepository repository (plainTypeorm: 'join')", async () => {
    const result = await writeThenRead('plain-repo', 'p-plainrepo');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it('a writing function called in a SELECT', async () => {
    const result = await writeThenRead('select-writes', 'p-select');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it('sessionFactory.atomic() in the request', async () => {
    const result = await writeThenRead('atomic', 'p-atomic');
    expect(result).toMatchObject({ status: 201, onPrimary: 1, onReplica: 0 });
    expect(result.read).toMatchObject({ replica: false, seen: 1 });
  });

  it('a connection killed before the COMMIT message: the commit fails, no token, nothing leaks', async () => {
    const factory = r.app.get(SessionFactory);
    const context = r.app.get(SessionContext);
    let failure: unknown;
    let token: string | undefined = 'unset';
    await factory.runInNewContext(async () => {
      failure = await factory
        .runInNewContext(async () => {
          await context.session().insert(ReplicaItem, { text: 'p-killed' });
          const rows: Array<{ pid: number }> = await context
            .session()
            .query('SELECT pg_backend_pid() AS pid');
          await runOn(pair().primary, `SELECT pg_terminate_backend(${rows[0]!.pid})`);
        })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      token = context.consistencyToken();
    });
    expect(failure).toBeInstanceOf(Error);
    expect([CommitOutcomeUnknownError.name, 'ConnectionLostError']).toContain(
      (failure as Error).constructor.name,
    );
    expect(token).toBeUndefined();
    expect(await rowsOn(pair().primary, 'p-killed')).toBe(0);
  });

  it('the token of a write is at or past the commit on the primary (LSN evidence)', async () => {
    const before = await runOn(pair().primary, 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const written = await r.http().post('/r22/plain/p-lsn');
    const after = await runOn(pair().primary, 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const token = written.headers[HEADER] as string;
    const lsn = (text: string) => positionIn(`default=${text}`);
    expect(positionIn(token)).toBeGreaterThan(lsn(before[0]!.lsn as string));
    expect(positionIn(token)).toBeLessThanOrEqual(lsn(after[0]!.lsn as string));
  });
});

import {
  CallHandler,
  CanActivate,
  Controller,
  ExecutionContext,
  ForbiddenException,
  Get,
  Injectable,
  NestInterceptor,
  Res,
  StreamableFile,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { Transform } from 'node:stream';
import { EMPTY, Observable, catchError, finalize, from, of, retry, timeout } from 'rxjs';
import { Propagation, SessionContext, Transactional } from '../../src/index.js';
import { createTestApp, eventually, type TestApp } from '../support/create-app.js';
import { engines, type Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const probe: { engine?: Engine; notes: string[]; held: number[]; retries: number } = {
  notes: [],
  held: [],
  retries: 0,
};

@Injectable()
class Blocks {
  constructor(private readonly context: SessionContext) {}

  @Transactional(Propagation.REQUIRES_NEW)
  async audit(text: string, inner?: string): Promise<void> {
    await this.context.session().insert(Example, { text });
    if (inner) await this.audit(inner);
    await sleep(30);
  }
}

@Injectable()
class WritingGuard implements CanActivate {
  constructor(private readonly context: SessionContext) {}
  async canActivate(): Promise<boolean> {
    await this.context.session().insert(Example, { text: 'guard' });
    throw new ForbiddenException('no');
  }
}

@Injectable()
class InnerTimeout implements NestInterceptor {
  intercept(_c: ExecutionContext, next: CallHandler) {
    return next.handle().pipe(timeout(100));
  }
}
@Injectable()
class InnerCatch implements NestInterceptor {
  intercept(_c: ExecutionContext, next: CallHandler) {
    return next.handle().pipe(catchError(() => of({ caught: true })));
  }
}
@Injectable()
class InnerRetry implements NestInterceptor {
  intercept(_c: ExecutionContext, next: CallHandler) {
    return next.handle().pipe(retry(1));
  }
}

/** A user's interceptor (inside the global AutoCommitInterceptor) that reports how the request's unit ended. */
@Injectable()
class ReportsOutcome implements NestInterceptor {
  constructor(private readonly context: SessionContext) {}
  intercept(_c: ExecutionContext, next: CallHandler) {
    return next.handle().pipe(
      finalize(() => {
        try {
          this.context.afterRollback(() => void probe.notes.push('reported: rolled back'));
        } catch (error) {
          probe.notes.push(`afterRollback threw ${(error as Error).constructor.name}`);
        }
      }),
    );
  }
}

@Controller('a')
class AnswerController {
  constructor(
    private readonly context: SessionContext,
    private readonly blocks: Blocks,
  ) {}

  private insert(text: string) {
    return this.context.session().insert(Example, { text });
  }

  @Get('many')
  async many() {
    await this.insert('many');
    return new Observable<number>((s) => {
      s.next(1);
      setTimeout(() => {
        void this.insert('many2').then(() => {
          s.next(2);
          s.next(3);
          s.complete();
        });
      }, 10);
    });
  }

  @Get('empty')
  async empty() {
    await this.insert('empty');
    return EMPTY;
  }

  @Get('sync-throw')
  async syncThrow() {
    await this.insert('sync-throw');
    return new Observable(() => {
      throw new Error('boom while subscribing');
    });
  }

  @Get('sync-complete')
  async syncComplete() {
    await this.insert('sync-complete');
    return of('a', 'b', 'done');
  }

  @Get('nodb-obs')
  nodbObs() {
    return of('x', 'y');
  }

  @Get('nodb-throw')
  nodbThrow() {
    return new Observable(() => {
      throw new ForbiddenException('sync');
    });
  }

  @Get('reported-throw')
  @UseInterceptors(ReportsOutcome)
  async reportedThrow() {
    await this.insert('reported');
    throw new Error('handler failed');
  }

  @Get('async-throw')
  async asyncThrow() {
    await this.insert('async-throw');
    throw new Error('handler failed');
  }

  @Get('error-after-values')
  async errorAfterValues() {
    await this.insert('eav');
    return new Observable((s) => {
      s.next(1);
      setTimeout(() => s.error(new Error('late')), 10);
    });
  }

  /** Writes, then fails later; the handler's finalize() asks to be told of the rollback. */
  @Get('finalize-after-rollback')
  async finalizeAfterRollback() {
    await this.insert('far');
    return new Observable((s) => {
      setTimeout(() => s.error(new Error('late failure')), 10);
    }).pipe(
      finalize(() => {
        probe.notes.push(`finalize: active=${String(this.context.isActive())}`);
        try {
          this.context.afterRollback(() => void probe.notes.push('afterRollback ran'));
        } catch (error) {
          probe.notes.push(`afterRollback threw ${(error as Error).constructor.name}`);
        }
      }),
    );
  }

  @Get('slow')
  async slow() {
    await this.insert('slow');
    await sleep(400);
    return { ok: true };
  }

  @Get('stream')
  async stream() {
    await this.insert('stream');
    const rows = await this.context
      .session()
      .createQueryBuilder()
      .select('s.g', 'g')
      .from(
        probe.engine!.name === 'postgres'
          ? '(SELECT generate_series(1, 2000) AS g)'
          : '(SELECT seq AS g FROM seq_1_to_2000)',
        's',
      )
      .stream();
    return new StreamableFile(
      rows.pipe(
        new Transform({
          writableObjectMode: true,
          transform(row: Record<string, unknown>, _e, done) {
            done(null, `${String(row.g)}\n`);
          },
        }),
      ),
    );
  }

  @Get('guarded')
  @UseGuards(WritingGuard)
  guarded() {
    return 'never';
  }

  @Get('res')
  async res(@Res() res: { send(b: unknown): void }) {
    await this.insert('res');
    await this.context.commit();
    res.send({ ok: true });
  }

  @Get('inner-timeout')
  @UseInterceptors(InnerTimeout)
  async innerTimeout() {
    await this.insert('inner-timeout');
    await sleep(300);
    return 'late';
  }

  @Get('inner-catch')
  @UseInterceptors(InnerCatch)
  async innerCatch() {
    await this.insert('inner-catch');
    throw new Error('x');
  }

  @Get('inner-retry')
  @UseInterceptors(InnerRetry)
  innerRetry() {
    return from(
      (async () => {
        probe.retries++;
        await this.insert(`retry${probe.retries}`);
        if (probe.retries === 1) throw new Error('first fails');
        return 'ok';
      })(),
    );
  }

  @Get('blocks')
  async blocksRoute() {
    await this.insert('outer');
    await Promise.all([this.blocks.audit('b1', 'b1-inner'), this.blocks.audit('b2')]);
    throw new Error('outer fails');
  }

  @Get('blocks-ok')
  async blocksOk() {
    await this.blocks.audit('c1', 'c1-inner');
    await this.insert('outer-ok');
    return from([1, 2]);
  }
}

describe.each(engines)(
  'plain HTTP: the handler is one answer, its unit ends around it ($name)',
  (engine) => {
    let t: TestApp;
    beforeAll(async () => {
      probe.engine = engine;
      t = await createTestApp(engine, {
        controllers: [AnswerController],
        providers: [Blocks, WritingGuard],
        poolSize: 6,
      });
    });
    beforeEach(async () => {
      probe.notes = [];
      probe.retries = 0;
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('many values: sends the last, commits all', async () => {
      const res = await t.http().get('/a/many').expect(200);
      expect(res.text).toBe('3');
      expect(await t.texts()).toEqual(['many', 'many2']);
    });

    it('errors while subscribing: rolls back', async () => {
      await t.http().get('/a/sync-throw').expect(500);
      expect(await t.rows()).toBe(0);
    });

    it('completes synchronously: commits, sends the last', async () => {
      const res = await t.http().get('/a/sync-complete').expect(200);
      expect(res.text).toBe('done');
      expect(await t.texts()).toEqual(['sync-complete']);
    });

    it('no database, synchronous Observable', async () => {
      const res = await t.http().get('/a/nodb-obs').expect(200);
      expect(res.text).toBe('y');
      await t.http().get('/a/nodb-throw').expect(403);
    });

    it('async handler throws: rolls back', async () => {
      await t.http().get('/a/async-throw').expect(500);
      expect(await t.rows()).toBe(0);
    });

    it('error after values: rolls back everything', async () => {
      await t.http().get('/a/error-after-values').expect(500);
      expect(await t.rows()).toBe(0);
    });

    it("a failing handler Observable's finalize() still runs in the unit (before its rollback)", async () => {
      await t.http().get('/a/finalize-after-rollback').expect(500);
      await eventually(() => probe.notes.length >= 2).catch(() => undefined);
      expect(probe.notes).toEqual(['finalize: active=true', 'afterRollback ran']);
      expect(await t.rows()).toBe(0);
    });

    it("a user's inner interceptor's finalize() of an async handler that throws still runs in the unit", async () => {
      await t.http().get('/a/reported-throw').expect(500);
      await eventually(() => probe.notes.length >= 1).catch(() => undefined);
      await sleep(50);
      expect(probe.notes).toEqual(['reported: rolled back']);
      expect(await t.rows()).toBe(0);
    });

    it('StreamableFile reading a database stream', async () => {
      const res = await t.http().get('/a/stream').expect(200);
      expect(String(res.text ?? res.body).split('\n').length).toBe(2001);
      expect(await t.texts()).toEqual(['stream']);
    });

    it('client aborts mid-request: nothing left idle in transaction', async () => {
      await t
        .http()
        .get('/a/slow')
        .timeout(100)
        .catch(() => undefined);
      await sleep(600);
      await t.expectClean();
    });

    it('guard writes then throws: rolled back when the response closes', async () => {
      await t.http().get('/a/guarded').expect(403);
      await t.expectClean();
      expect(await t.rows()).toBe(0);
    });

    it('@Res() route', async () => {
      await t.http().get('/a/res').expect(200);
      expect(await t.texts()).toEqual(['res']);
    });

    it('inner timeout(): rolls back', async () => {
      await t.http().get('/a/inner-timeout').expect(500);
      await sleep(400);
      expect(await t.rows()).toBe(0);
    });

    it('inner catchError(): commits', async () => {
      const res = await t.http().get('/a/inner-catch').expect(200);
      expect(res.body).toEqual({ caught: true });
    });

    it('inner retry(): one unit, both attempts committed', async () => {
      const res = await t.http().get('/a/inner-retry').expect(200);
      expect(res.text).toBe('ok');
      expect(await t.texts()).toEqual(['retry1', 'retry2']);
    });

    it('REQUIRES_NEW blocks (nested, concurrent) survive the outer rollback', async () => {
      await t.http().get('/a/blocks').expect(500);
      expect(await t.texts()).toEqual(['b1', 'b1-inner', 'b2']);
      const res = await t.http().get('/a/blocks-ok').expect(200);
      expect(res.text).toBe('2');
    });
  },
);

import { Controller, Get } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import {
  RollbackOnlyError,
  SessionContext,
  SessionFactory,
  Transactional,
  TransactionNotAllowedError,
  TransactionRequiredError,
} from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines, backendId, txid, enginesAndSqlite } from '../support/engines.js';
import { PropagationService } from './propagation.service.js';

@Controller('decorated')
class DecoratedController {
  @Get('route-first')
  @Transactional()
  routeFirst() {
    return 'routed';
  }

  @Transactional()
  @Get('transactional-first')
  transactionalFirst() {
    return 'routed';
  }
}

describe.each(enginesAndSqlite)('@Transactional propagation ($name)', (engine) => {
  let t: TestApp;
  let service: PropagationService;
  let run: SessionFactory['runInNewContext'];
  let context: SessionContext;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      providers: [PropagationService],
      controllers: [DecoratedController],
    });
    service = t.app.get(PropagationService);
    context = t.app.get(SessionContext);
    const factory = t.app.get(SessionFactory);
    run = factory.runInNewContext.bind(factory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('outside any context, @Transactional() opens one and commits when the method resolves', async () => {
    await service.required('cron_job');
    await expect(service.required('failed_job', true)).rejects.toThrow('failed_job failed');
    expect(await t.texts()).toEqual(['cron_job']);
  });

  it('REQUIRED joins the current transaction (same transaction id)', async () => {
    await run(async () => {
      await context.session().insert('example', { text: 'outer' });
      const outer = await txid(engine, context.session());
      let inner: string | null = null;
      await context.atomic(async (manager) => {
        inner = await txid(engine, manager);
      });
      expect(inner).toBe(outer);
    });
  });

  it('REQUIRED: an escaping error makes the transaction rollback-only; the commit refuses it', async () => {
    const attempt = run(async () => {
      await context.session().insert('example', { text: 'outer' });
      await service.required('inner', true).catch(() => undefined);
    });
    await expect(attempt).rejects.toBeInstanceOf(RollbackOnlyError);
    expect(await t.rows()).toBe(0);
  });

  it('NESTED: an inner rollback keeps the outer work; an outer rollback discards the inner work', async () => {
    await run(async () => {
      await context.session().insert('example', { text: 'outer_kept' });
      await service.nested('inner_rolled_back', true).catch(() => undefined);
      await service.nested('inner_kept');
    });
    expect(await t.texts()).toEqual(['inner_kept', 'outer_kept']);
    await t.dataSource.query('DELETE FROM example');
    await expect(
      run(async () => {
        await service.nested('inner_discarded');
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(await t.rows()).toBe(0);
  });

  it('keeps the method name and route metadata in either decorator order', async () => {
    expect(DecoratedController.prototype.routeFirst.name).toBe('routeFirst');
    expect(
      Reflect.getMetadata(PATH_METADATA, DecoratedController.prototype.transactionalFirst),
    ).toBe('transactional-first');
    await t.http().get('/decorated/route-first').expect(200, 'routed');
    await t.http().get('/decorated/transactional-first').expect(200, 'routed');
  });
});

/** REQUIRES_NEW and NOT_SUPPORTED inside a transaction need a second connection, which SQLite does not have. */
describe.each(engines)('@Transactional propagation beside the transaction ($name)', (engine) => {
  let t: TestApp;
  let service: PropagationService;
  let run: SessionFactory['runInNewContext'];
  let context: SessionContext;

  beforeAll(async () => {
    t = await createTestApp(engine, {
      providers: [PropagationService],
      controllers: [DecoratedController],
    });
    service = t.app.get(PropagationService);
    context = t.app.get(SessionContext);
    const factory = t.app.get(SessionFactory);
    run = factory.runInNewContext.bind(factory);
  });
  beforeEach(() => t.dataSource.query('DELETE FROM example'));
  afterEach(() => t.expectClean());
  afterAll(() => t.close());

  it('REQUIRES_NEW runs on another connection and survives an outer rollback', async () => {
    await expect(
      run(async () => {
        const outer = await backendId(engine, context.session());
        await service.requiresNew('independent');
        const inner = await context.atomic(() => backendId(engine, context.session()));
        expect(inner).toBe(outer);
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(await t.texts()).toEqual(['independent']);
  });

  it('MANDATORY needs a transaction; NEVER refuses one; NOT_SUPPORTED runs outside it', async () => {
    await expect(service.mandatory('no')).rejects.toBeInstanceOf(TransactionRequiredError);
    await expect(run(() => service.never('no'))).rejects.toBeInstanceOf(TransactionNotAllowedError);
    await service.never('never_outside');
    await expect(
      run(async () => {
        await service.mandatory('mandatory_rolled_back');
        await service.notSupported('not_supported_autocommitted');
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(await t.texts()).toEqual(['never_outside', 'not_supported_autocommitted']);
  });
});

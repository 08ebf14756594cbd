import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  ForbiddenException,
  Get,
  Injectable,
  Post,
  Req,
  UseGuards,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import { SessionContext } from '../../src/index.js';
import { type Engine, backendId, checkedOut, isSqliteEngine, txid } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Set by the spec: the engine the app runs on, and where late uses report. */
export const probe: { engine?: Engine; lateErrors: unknown[] } = { lateErrors: [] };

/** Loads the "user" through the session, as an auth guard would, before the interceptor runs. */
@Injectable()
export class SessionGuard implements CanActivate {
  constructor(private readonly context: SessionContext) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context
      .switchToHttp()
      .getRequest<{ guardBackend?: string; query: Record<string, string> }>();
    const manager = this.context.session();
    request.guardBackend = await backendId(probe.engine!, manager);
    await manager.insert(Example, { text: 'written_by_guard' });
    if (request.query.deny) throw new ForbiddenException('denied after using the session');
    return true;
  }
}

@Controller()
export class AutoCommitController {
  constructor(
    private readonly context: SessionContext,
    private readonly dataSource: DataSource,
  ) {}

  @Get('noop')
  noop() {
    return { checkedOut: checkedOut(this.dataSource), total: this.totalConnections() };
  }

  @Get('lazy')
  lazy() {
    const manager = this.context.session();
    return { hasManager: manager !== undefined, checkedOut: checkedOut(this.dataSource) };
  }

  @Post('save-joins')
  async saveJoins() {
    const manager = this.context.session();
    const before = await manager.query(
      probe.engine!.name === 'postgres' ? 'SELECT txid_current()::text AS id' : 'SELECT 1 AS id',
    );
    await manager.insert(Example, { text: 'first_write' });
    const assigned = await txid(probe.engine!, manager);
    await manager.getRepository(Example).save({ text: 'saved' });
    await manager.remove(await manager.findOneByOrFail(Example, { text: 'first_write' }));
    const after = await txid(probe.engine!, manager);
    // SQLite has no other connection to look from (a plain read here would wait for this session).
    const visibleOutside = isSqliteEngine(probe.engine!)
      ? 'no other connection on SQLite'
      : await this.dataSource.getRepository(Example).countBy({ text: 'saved' });
    return { before: before[0].id, assigned, after, visibleOutside };
  }

  @Get('same-session')
  async sameSession() {
    const [a, b] = await Promise.all([
      Promise.resolve().then(() => this.context.session()),
      Promise.resolve().then(() => this.context.session()),
    ]);
    const [pidA, pidB] = await Promise.all([
      backendId(probe.engine!, a),
      backendId(probe.engine!, b),
    ]);
    return { sameManager: a === b, sameBackend: pidA === pidB };
  }

  @Get('guarded')
  @UseGuards(SessionGuard)
  async guarded(@Req() request: { guardBackend?: string }) {
    return {
      guard: request.guardBackend,
      handler: await backendId(probe.engine!, this.context.session()),
    };
  }

  @Post('late-use')
  async lateUse() {
    const manager = this.context.session();
    await manager.insert(Example, { text: 'in_time' });
    setTimeout(() => {
      manager.insert(Example, { text: 'too_late' }).then(
        () => probe.lateErrors.push('the late insert succeeded'),
        (error: unknown) => probe.lateErrors.push(error),
      );
      try {
        this.context.session();
      } catch (error) {
        probe.lateErrors.push(error);
      }
    }, 300);
    return 'ok';
  }

  @Post('insert')
  async insert() {
    await this.context.session().insert(Example, { text: 'inserted' });
    return 'ok';
  }

  @Post('deferred-violation')
  async deferredViolation() {
    const manager = this.context.session();
    await manager.insert(Example, { text: 'lost_with_the_commit' });
    await manager.query('INSERT INTO deferred_check (id) VALUES (1), (1)');
    return 'the handler succeeded';
  }

  private totalConnections(): number {
    const driver = this.dataSource.driver as unknown as {
      master?: { totalCount: number };
      pool?: { _allConnections: { length: number } };
    };
    return driver.master?.totalCount ?? driver.pool?._allConnections.length ?? -1;
  }
}

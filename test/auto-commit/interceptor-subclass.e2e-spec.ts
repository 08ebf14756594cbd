import {
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  HttpException,
  Injectable,
  NestInterceptor,
  UseInterceptors,
} from '@nestjs/common';
import { Observable, timeout } from 'rxjs';
import { AutoCommitInterceptor, SessionContext } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mode: { throwIn?: string } = {};

@Injectable()
class Sub extends AutoCommitInterceptor {
  protected override shouldCommit(c: ExecutionContext) {
    if (mode.throwIn === 'shouldCommit') throw new HttpException('sc', 418);
    return super.shouldCommit(c);
  }
  protected override onError(e: unknown) {
    if (mode.throwIn === 'onError') throw new HttpException('oe', 419);
    return e;
  }
  protected override sendsEveryValue(c: ExecutionContext) {
    if (mode.throwIn === 'sendsEveryValue') throw new HttpException('sev', 420);
    return super.sendsEveryValue(c);
  }
}

@Injectable()
class OuterTimeout implements NestInterceptor {
  intercept(c: ExecutionContext, next: CallHandler) {
    // Only /s/slow is meant to time out: a loaded CI machine may take 100 ms for the others.
    return next.handle().pipe(timeout(c.getHandler().name === 'slow' ? 100 : 10_000));
  }
}

@Controller('s')
@UseInterceptors(OuterTimeout, Sub)
class SubController {
  constructor(private readonly context: SessionContext) {}
  @Get('ok')
  async ok() {
    await this.context.session().insert(Example, { text: 'ok' });
    return 'ok';
  }
  @Get('fail')
  async fail() {
    await this.context.session().insert(Example, { text: 'fail' });
    throw new Error('x');
  }
  @Get('slow')
  async slow() {
    await this.context.session().insert(Example, { text: 'slow' });
    return new Observable((s) => {
      const timer = setTimeout(() => {
        s.next('late');
        s.complete();
      }, 400);
      return () => clearTimeout(timer);
    });
  }
}

describe.each(engines)(
  'a subclass of AutoCommitInterceptor, an outer timeout() ($name)',
  (engine) => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp(engine, {
        controllers: [SubController],
        providers: [Sub, OuterTimeout],
        context: { autoCommit: false },
      });
    });
    beforeEach(async () => {
      mode.throwIn = undefined;
      await t.dataSource.query('DELETE FROM example');
    });
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it('commits', async () => {
      await t.http().get('/s/ok').expect(200);
      expect(await t.texts()).toEqual(['ok']);
    });
    it.each([
      ['shouldCommit', '/s/ok', 418],
      ['sendsEveryValue', '/s/ok', 420],
      ['onError', '/s/fail', 419],
    ])('%s throwing rolls back', async (where, path, status) => {
      mode.throwIn = where;
      await t.http().get(path).expect(status);
      expect(await t.rows()).toBe(0);
    });
    it('outer timeout unsubscribes: rolled back, released', async () => {
      await t.http().get('/s/slow').expect(500);
      await sleep(500);
      expect(await t.rows()).toBe(0);
    });
  },
);

import {
  type CallHandler,
  Controller,
  type ExecutionContext,
  Get,
  Inject,
  Injectable,
  Module,
  type NestInterceptor,
  Post,
  Scope,
} from '@nestjs/common';
import { APP_INTERCEPTOR, REQUEST } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { catchError, mergeMap, type Observable } from 'rxjs';
import { DataSource, type EntityManager, type QueryRunner } from 'typeorm';
import {
  BenchItem,
  chainQueries,
  parallel,
  rowName,
  sleepOn,
  someId,
  typeormOptions,
  type Variant,
  waitElsewhere,
} from '../shared.js';
import { inTransaction } from './baseline.js';

type RequestWithTx = { requestTx?: RequestTx };

/** A Scope.REQUEST provider holding the request's QueryRunner (connected and begun on first use). */
@Injectable({ scope: Scope.REQUEST })
export class RequestTx {
  private runner?: QueryRunner;
  private ready?: Promise<EntityManager>;

  constructor(
    @Inject(REQUEST) request: RequestWithTx,
    private readonly dataSource: DataSource,
  ) {
    request.requestTx = this;
  }

  manager(): Promise<EntityManager> {
    this.ready ??= (async () => {
      const runner = this.dataSource.createQueryRunner();
      this.runner = runner;
      await runner.connect();
      await runner.startTransaction();
      return runner.manager;
    })();
    return this.ready;
  }

  async finish(commit: boolean): Promise<void> {
    const runner = this.runner;
    if (!runner) return;
    this.runner = undefined;
    try {
      await this.ready;
      if (commit) await runner.commitTransaction();
      else await runner.rollbackTransaction();
    } finally {
      this.ready = undefined; // the next manager() begins a new transaction
      await runner.release();
    }
  }
}

/** Commits (or rolls back) the request's runner before the response is sent. */
@Injectable()
export class RequestTxInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = context.switchToHttp().getRequest<RequestWithTx>();
    return next.handle().pipe(
      mergeMap(async (value) => {
        await request.requestTx?.finish(true);
        return value;
      }),
      catchError(async (error: unknown) => {
        await request.requestTx?.finish(false);
        throw error;
      }),
    );
  }
}

/** Service B of the chain (request-scoped through RequestTx). */
@Injectable()
export class ItemService {
  constructor(private readonly tx: RequestTx) {}

  private async repo() {
    return (await this.tx.manager()).getRepository(BenchItem);
  }

  async readOne() {
    return (await this.repo()).findOneBy({ id: someId() });
  }

  async read() {
    return chainQueries.read(await this.repo());
  }

  async insert(name: string) {
    return chainQueries.insert(await this.repo(), name);
  }

  async check(id: number) {
    return chainQueries.check(await this.repo(), id);
  }

  async readById(id: number) {
    return (await this.repo()).findOneBy({ id });
  }

  /** Commits what the request did so far and gives the runner back. */
  commit() {
    return this.tx.finish(true);
  }
}

/** Service A of the chain. */
@Injectable()
export class ChainService {
  constructor(private readonly items: ItemService) {}

  async run() {
    const read = await this.items.read();
    const id = await this.items.insert(rowName('c'));
    return { read, id, ...(await this.items.check(id)) };
  }
}

@Controller()
export class RequestScopeController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly items: ItemService,
    private readonly chain: ChainService,
  ) {}

  @Get('noop')
  noop() {
    return { ok: true };
  }

  @Get('read')
  read() {
    return this.items.readOne();
  }

  @Post('write')
  async write() {
    const name = rowName('w');
    return { id: await this.items.insert(name), name };
  }

  @Get('chain')
  chainOfServices() {
    return this.chain.run();
  }

  /** One request-scoped runner cannot run queries in parallel: three runners of their own. */
  @Get('parallel')
  parallel() {
    return parallel(() => inTransaction(this.dataSource, sleepOn));
  }

  /** One write, an early commit through the holder, a wait, one read. */
  @Post('commit-then-wait')
  async commitThenWait() {
    const id = await this.items.insert(rowName('t'));
    await this.items.commit();
    await waitElsewhere();
    return this.items.readById(id);
  }
}

@Module({
  imports: [TypeOrmModule.forRoot(typeormOptions)],
  controllers: [RequestScopeController],
  providers: [
    RequestTx,
    ItemService,
    ChainService,
    { provide: APP_INTERCEPTOR, useClass: RequestTxInterceptor },
  ],
})
class RequestScopeModule {}

const variant: Variant = { module: () => RequestScopeModule };
export default variant;

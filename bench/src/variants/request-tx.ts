/** The request-scoped QueryRunner holder of the `request-scope` variant and its committing interceptor. */
import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
  Scope,
} from '@nestjs/common';
import { REQUEST } from '@nestjs/core';
import { catchError, mergeMap, type Observable } from 'rxjs';
import { DataSource, type EntityManager, type QueryRunner } from 'typeorm';

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

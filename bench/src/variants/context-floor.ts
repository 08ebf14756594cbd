import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Observable } from 'rxjs';
import type { Variant } from '../shared.js';
import { baselineModule } from './baseline.js';

const storage = new AsyncLocalStorage<object>();

/** The least any AsyncLocalStorage context library must do: run the request in a store. */
@Injectable()
export class ContextFloorInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return new Observable((subscriber) =>
      storage.run({}, () => next.handle().subscribe(subscriber)),
    );
  }
}

const variant: Variant = {
  module: () => baselineModule([{ provide: APP_INTERCEPTOR, useClass: ContextFloorInterceptor }]),
};
export default variant;

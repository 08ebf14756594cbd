import {
  type DynamicModule,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestInterceptor,
  type NestModule,
  RequestMethod,
} from '@nestjs/common';
import { APP_INTERCEPTOR, ModuleRef } from '@nestjs/core';
import { SessionContext } from './context/session-context.js';
import { SessionRuntime } from './context/session-runtime.js';
import { SessionFactory } from './factory/session-factory.js';
import { AutoCommitInterceptor } from './interceptors/auto-commit.interceptor.js';
import type { TypeOrmContextModuleOptions } from './interfaces/typeorm-context-options.interface.js';
import { SessionContextMiddleware } from './middleware/session-context.middleware.js';
import {
  ConfigurableModuleClass,
  OPTIONS_TYPE,
  TYPEORM_CONTEXT_MODULE_OPTIONS,
} from './typeorm-context.module-definition.js';
import { resolveModuleOptions } from './typeorm-context.options.js';

const passThrough: NestInterceptor = { intercept: (_context, next) => next.handle() };

/**
 * Per-request TypeORM sessions: import `TypeOrmContextModule.forRoot()` next to
 * `TypeOrmModule.forRoot()`, then inject `SessionContext` and `SessionFactory` anywhere.
 */
@Module({
  providers: [
    {
      provide: SessionRuntime,
      useFactory: (options: TypeOrmContextModuleOptions, moduleRef: ModuleRef) =>
        new SessionRuntime(resolveModuleOptions(options), moduleRef),
      inject: [TYPEORM_CONTEXT_MODULE_OPTIONS, ModuleRef],
    },
    SessionContext,
    SessionFactory,
    AutoCommitInterceptor,
    {
      provide: APP_INTERCEPTOR,
      useFactory: (runtime: SessionRuntime, interceptor: AutoCommitInterceptor) =>
        runtime.options.autoCommit ? interceptor : passThrough,
      inject: [SessionRuntime, AutoCommitInterceptor],
    },
  ],
  exports: [SessionContext, SessionFactory, AutoCommitInterceptor],
})
export class TypeOrmContextModule extends ConfigurableModuleClass implements NestModule {
  constructor(@Inject(SessionRuntime) private readonly runtime: SessionRuntime) {
    super();
  }

  /** Registers the module with `options` (all optional: `forRoot()` uses the default data source). */
  static override forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }

  /** Mounts the context middleware on every route (unless `middleware: false`). */
  configure(consumer: MiddlewareConsumer): void {
    if (!this.runtime.options.middleware) return;
    consumer
      .apply(SessionContextMiddleware)
      .forRoutes({ path: '{*path}', method: RequestMethod.ALL });
  }
}

import {
  type DynamicModule,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestInterceptor,
  type NestModule,
} from '@nestjs/common';
import { APP_INTERCEPTOR, HttpAdapterHost, ModuleRef, ModulesContainer } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionContext } from './context/session-context.js';
import { SessionRuntime } from './context/session-runtime.js';
import { SessionFactory } from './factory/session-factory.js';
import { HybridAppCheck } from './jobs/hybrid-app-check.js';
import { JobUnits } from './jobs/job-units.js';
import { ApolloOperationUnits } from './graphql/apollo-operation-units.js';
import { MercuriusOperationUnits } from './graphql/mercurius-operation-units.js';
import { AutoCommitInterceptor } from './interceptors/auto-commit.interceptor.js';
import type { TypeOrmContextModuleOptions } from './interfaces/typeorm-context-options.interface.js';
import {
  type ClosableResponse,
  openRequestContext,
} from './middleware/session-context.middleware.js';
import {
  createRepositoryProviders,
  createSessionProvider,
  type EntityClassOrSchema,
} from './repositories/repository.providers.js';
import { TypeOrmContextFeatureModule } from './repositories/typeorm-context-feature.module.js';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  OPTIONS_TYPE,
  TYPEORM_CONTEXT_MODULE_OPTIONS,
} from './typeorm-context.module-definition.js';
import { DEFAULT_DATA_SOURCE, resolveModuleOptions } from './typeorm-context.options.js';

function withSessions(module: DynamicModule, names: readonly string[]): DynamicModule {
  const providers = names.map(createSessionProvider);
  return {
    ...module,
    providers: [...(module.providers ?? []), ...providers],
    exports: [...(module.exports ?? []), ...providers],
  };
}

const passThrough: NestInterceptor = { intercept: (_context, next) => next.handle() };

/**
 * Per-request TypeORM sessions: import `TypeOrmContextModule.forRoot()` next to
 * `TypeOrmModule.forRoot()`, then inject `SessionContext` and `SessionFactory` anywhere.
 */
@Module({
  providers: [
    {
      provide: SessionRuntime,
      useFactory: (
        options: TypeOrmContextModuleOptions,
        moduleRef: ModuleRef,
        modules: ModulesContainer,
      ) => new SessionRuntime(resolveModuleOptions(options), moduleRef, modules),
      inject: [TYPEORM_CONTEXT_MODULE_OPTIONS, ModuleRef, ModulesContainer],
    },
    SessionContext,
    SessionFactory,
    AutoCommitInterceptor,
    // GraphQL operations: found by @nestjs/apollo, or hooked into Mercurius at startup.
    ApolloOperationUnits,
    MercuriusOperationUnits,
    {
      // Wraps the job methods while the app's instances are created, before any startup hook.
      provide: JobUnits,
      useFactory: (runtime: SessionRuntime, modules: ModulesContainer) =>
        new JobUnits(runtime, modules),
      inject: [SessionRuntime, ModulesContainer],
    },
    {
      // Watches for microservices connected without the app's configuration (and interceptor).
      provide: HybridAppCheck,
      useFactory: (
        runtime: SessionRuntime,
        modules: ModulesContainer,
        adapterHost: HttpAdapterHost,
        moduleRef: ModuleRef,
      ) => new HybridAppCheck(runtime.options.autoCommit, modules, adapterHost, moduleRef),
      inject: [SessionRuntime, ModulesContainer, HttpAdapterHost, ModuleRef],
    },
    {
      provide: APP_INTERCEPTOR,
      useFactory: (runtime: SessionRuntime, interceptor: AutoCommitInterceptor) =>
        runtime.options.autoCommit ? interceptor : passThrough,
      inject: [SessionRuntime, AutoCommitInterceptor],
    },
  ],
  exports: [SessionRuntime, SessionContext, SessionFactory, AutoCommitInterceptor],
})
export class TypeOrmContextModule extends ConfigurableModuleClass implements NestModule {
  constructor(
    @Inject(SessionRuntime) private readonly runtime: SessionRuntime,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {
    super();
  }

  /** Registers the module with `options` (all optional: `forRoot()` uses the default data source). */
  static override forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    const names = Array.isArray(options.dataSources) ? options.dataSources : [DEFAULT_DATA_SOURCE];
    return withSessions(super.forRoot(options), names);
  }

  /** Registers the module with options from a factory (`useFactory`, `useClass`, `useExisting`). */
  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    return withSessions(super.forRootAsync(options), [DEFAULT_DATA_SOURCE]);
  }

  /**
   * Context-aware repositories for `entities` of `dataSource`, under `@nestjs/typeorm`'s tokens:
   * use it instead of `TypeOrmModule.forFeature()` and inject them with `@InjectRepository()`.
   * Also provides `@InjectSession(dataSource)` to the importing module.
   */
  static forFeature(
    entities: EntityClassOrSchema[] = [],
    dataSource: string = DEFAULT_DATA_SOURCE,
  ): DynamicModule {
    const providers = [
      ...createRepositoryProviders(entities, dataSource),
      createSessionProvider(dataSource),
    ];
    // Registers the entities for `autoLoadEntities` (a side effect of TypeOrmModule.forFeature()),
    // without importing its module: its plain repositories would shadow these under the same tokens.
    TypeOrmModule.forFeature(entities, dataSource);
    return { module: TypeOrmContextFeatureModule, providers, exports: providers };
  }

  /**
   * Mounts the context middleware for every HTTP request (unless `middleware: false`), straight on
   * the HTTP adapter: no route matching and no async wrapper per request.
   */
  configure(_consumer: MiddlewareConsumer): void {
    const adapter = this.adapterHost.httpAdapter as HttpAdapterHost['httpAdapter'] | undefined;
    if (!this.runtime.options.middleware || adapter === undefined) return;
    const runtime = this.runtime;
    adapter.use((request: unknown, response: ClosableResponse, next: () => void) =>
      openRequestContext(request, response, next, runtime),
    );
  }
}

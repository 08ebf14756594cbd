import type { Provider } from '@nestjs/common';
import { getDataSourceToken, getRepositoryToken } from '@nestjs/typeorm';
import type { DataSource, EntitySchema, ObjectLiteral, Repository } from 'typeorm';
import { SessionRuntime } from '../context/session-runtime.js';
import { messages } from '../errors/messages.js';
import { UnknownDataSourceError } from '../errors/unknown-data-source.error.js';
import { contextRepository } from './context-repository.js';
import { getSessionToken } from './inject-session.decorator.js';
import { sessionManager } from './session-manager.js';

/** An entity class or schema, as `TypeOrmModule.forFeature()` takes them. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export type EntityClassOrSchema = Function | EntitySchema;

function assertKnown(runtime: SessionRuntime, name: string): void {
  const known = runtime.options.dataSources;
  if (!known.includes(name))
    throw new UnknownDataSourceError(messages.unknownDataSource(name, known));
}

function baseRepository(dataSource: DataSource, entity: EntityClassOrSchema) {
  const metadata = dataSource.entityMetadatas.find((meta) => meta.target === entity);
  return (
    metadata?.treeType !== undefined
      ? dataSource.getTreeRepository(entity)
      : dataSource.getRepository(entity)
  ) as Repository<ObjectLiteral>;
}

/** Providers of context-aware repositories under `@nestjs/typeorm`'s repository tokens. */
export function createRepositoryProviders(
  entities: readonly EntityClassOrSchema[],
  name: string,
): Provider[] {
  return entities.map((entity) => ({
    provide: getRepositoryToken(entity, name),
    useFactory: (runtime: SessionRuntime, dataSource: DataSource) => {
      assertKnown(runtime, name);
      return contextRepository(baseRepository(dataSource, entity), () => runtime.manager(name));
    },
    inject: [SessionRuntime, getDataSourceToken(name)],
  }));
}

/** The provider behind `@InjectSession(name)`; an unknown name fails at its first use. */
export function createSessionProvider(name: string): Provider {
  return {
    provide: getSessionToken(name),
    useFactory: (runtime: SessionRuntime) => sessionManager(runtime, name),
    inject: [SessionRuntime],
  };
}

import { Inject } from '@nestjs/common';
import { DEFAULT_DATA_SOURCE } from '../typeorm-context.options.js';

/** The injection token of the context-aware `EntityManager` of data source `name`. */
export function getSessionToken(name: string = DEFAULT_DATA_SOURCE): string {
  return `TypeOrmContextSession:${name}`;
}

/**
 * Injects an `EntityManager` that always resolves to the current context's session of
 * `dataSource` (outside any unit of work, a manager of the data source, as `outsideUnit` says).
 */
export const InjectSession = (dataSource?: string): ParameterDecorator & PropertyDecorator =>
  Inject(getSessionToken(dataSource));

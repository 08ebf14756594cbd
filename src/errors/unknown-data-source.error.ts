import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown for a data source name the module was not configured with. */
export class UnknownDataSourceError extends TypeOrmContextError {}

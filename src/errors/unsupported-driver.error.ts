import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown for a TypeORM driver whose transactions this library cannot drive. */
export class UnsupportedDriverError extends TypeOrmContextError {}

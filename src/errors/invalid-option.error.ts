import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown at startup or call time for an option value that makes no sense. */
export class InvalidOptionError extends TypeOrmContextError {}

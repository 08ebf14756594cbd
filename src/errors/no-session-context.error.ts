import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by `session()` and friends when no session context is active. */
export class NoSessionContextError extends TypeOrmContextError {}

import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown when a session is requested before TypeOrmContextModule was initialized. */
export class ModuleNotInitializedError extends TypeOrmContextError {}

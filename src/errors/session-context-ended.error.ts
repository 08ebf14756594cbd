import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown when a session is used after its request, job or runInNewContext() ended. */
export class SessionContextEndedError extends TypeOrmContextError {}

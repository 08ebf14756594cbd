import { TypeOrmContextError } from './typeorm-context.error.js';

/** Thrown by Propagation.MANDATORY when no transaction is current. */
export class TransactionRequiredError extends TypeOrmContextError {}

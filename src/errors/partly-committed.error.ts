import { TypeOrmContextError } from './typeorm-context.error.js';

/**
 * Thrown when a block that owns its transactions failed after part of its work committed (a
 * data source committed before the next one's COMMIT failed, `sessionContext.commit()` inside
 * it, or a REQUIRES_NEW block inside it that committed): the committed part stands, so neither its `retry` nor a block around it runs it again.
 * `cause` is the failure.
 */
export class PartlyCommittedError extends TypeOrmContextError {}

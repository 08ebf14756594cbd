/** How a transactional block relates to the transaction already current for its data source. */
export enum Propagation {
  /** Join the current transaction, or own a new one when there is none (the default). */
  REQUIRED = 'REQUIRED',
  /** Always run on an independent session and transaction; the current one is left untouched. */
  REQUIRES_NEW = 'REQUIRES_NEW',
  /** Run in a SAVEPOINT of the current transaction (or like REQUIRED when there is none). */
  NESTED = 'NESTED',
  /** Join the current transaction; throw when there is none. */
  MANDATORY = 'MANDATORY',
  /** Run without a transaction; throw when one is current. */
  NEVER = 'NEVER',
  /** Join the current transaction if there is one, otherwise run without a transaction. */
  SUPPORTS = 'SUPPORTS',
  /** Suspend the current transaction and run without one. */
  NOT_SUPPORTED = 'NOT_SUPPORTED',
}

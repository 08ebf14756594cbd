/** Marks the functions `@Transactional()` made (registered: a second copy of the library sees it). */
const TRANSACTIONAL_METHOD = Symbol.for('nestjs-typeorm-context.transactional-method');

/** Marks `method` as made by `@Transactional()`. */
export function markTransactionalMethod(method: object): void {
  Object.defineProperty(method, TRANSACTIONAL_METHOD, { value: true });
}

/** Whether `@Transactional()` made `method`: outside any unit of work it opens one for the call. */
export function isTransactionalMethod(method: unknown): boolean {
  return typeof method === 'function' && TRANSACTIONAL_METHOD in method;
}

import type { EntityManager, ObjectLiteral, Repository } from 'typeorm';

/**
 * A view of `base` whose `manager` is resolved on every access, so each of its methods (and
 * `createQueryBuilder()`, and the methods of repositories made from it with `.extend()`) runs in
 * the session current at the call. `base` itself is left untouched: no prototype is patched.
 */
export function contextRepository<R extends Repository<ObjectLiteral>>(
  base: R,
  resolve: () => EntityManager,
): R {
  const repository = Object.create(base) as R;
  Object.defineProperty(repository, 'manager', { get: resolve, enumerable: true });
  Object.defineProperty(repository, 'extend', {
    // Extend the untouched base (its manager is the data source's), then make the result aware.
    value: (custom: object) => contextRepository(base.extend(custom), resolve),
  });
  return repository;
}

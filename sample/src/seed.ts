import { User } from './entities.js';
import { SessionContext, SessionFactory } from 'nestjs-typeorm-context';

/**
 * A script function outside any request: runInNewContext() gives it a context of its own, so
 * sessionContext.session() works as in a handler; committed when it resolves.
 */
export function seedUsers(sessionFactory: SessionFactory, sessionContext: SessionContext) {
  return sessionFactory.runInNewContext(async () => {
    const db = sessionContext.session();
    await db.upsert(User, [{ name: 'alice', token: 'alice-token' }], ['token']);
    return db.count(User);
  });
}

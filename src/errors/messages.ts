/** Every message says what happened and how to fix it. */
export const messages = {
  noContext: (dataSource: string) =>
    `No session context: session('${dataSource}') ran outside a request, job or runInNewContext(). ` +
    'Register the AutoCommitInterceptor (on by default), wrap the call in @Transactional() or ' +
    'sessionFactory.runInNewContext(), or use sessionFactory.open() for a session of your own.',
  contextEnded: (dataSource: string) =>
    `The session context has ended: a session of data source '${dataSource}' was used after its ` +
    'request, job or runInNewContext() finished (a stream, a timer or a promise nobody awaited). ' +
    'Await the work before the handler returns, or run it in sessionFactory.runInNewContext().',
  sessionClosed: (dataSource: string) =>
    `This session of data source '${dataSource}' was closed. Call sessionContext.session() again ` +
    'for a fresh one, or sessionFactory.open() for a new independent session.',
  unknownDataSource: (name: string, known: readonly string[]) =>
    `Unknown data source '${name}': TypeOrmContextModule knows ${known.map((n) => `'${n}'`).join(', ')}. ` +
    `Add '${name}' to TypeOrmContextModule.forRoot({ dataSources: [...] }) and register it with ` +
    `TypeOrmModule.forRoot({ name: '${name}', ... }).`,
  dataSourceNotRegistered: (name: string) =>
    `TypeOrmContextModule: data source '${name}' is not registered with @nestjs/typeorm. ` +
    `Import TypeOrmModule.forRoot({ ${name === 'default' ? '' : `name: '${name}', `}... }) in the same application, ` +
    'or remove the name from TypeOrmContextModule.forRoot({ dataSources }).',
  notInitialized: () =>
    'TypeOrmContextModule is not initialized: @Transactional() and the sessions need ' +
    'TypeOrmContextModule.forRoot() imported in the application and the application initialized ' +
    '(await app.init(), or NestFactory.create()).',
  shutDown: () =>
    'TypeOrmContextModule has shut down: this @Transactional() call or session arrived after ' +
    'app.close() began (a request still in flight, a timer or a job that outlived the app). ' +
    'Stop the work before closing the application (enableShutdownHooks(), drain queues first).',
  invalidOption: (option: string, value: unknown, expected: string) =>
    `Invalid option ${option}: ${describe(value)}. Expected ${expected}.`,
  unsupportedDriver: (type: string) =>
    `Data source type '${type}' is not supported by nestjs-typeorm-context: use postgres, ` +
    'cockroachdb, mysql, mariadb or aurora-mysql.',
  rollbackOnly: (dataSource: string) =>
    `Transaction of data source '${dataSource}' is rollback-only: an error escaped a @Transactional() ` +
    'block that joined it, so it was rolled back instead of committed. Let the error propagate, ' +
    'use Propagation.NESTED (a savepoint) to catch and continue, or call sessionContext.rollback() ' +
    'to discard the work and clear the mark.',
  transactionRequired: (dataSource: string) =>
    `Propagation.MANDATORY needs a current transaction of data source '${dataSource}', and there is ` +
    'none: call the method from a request, job or transactional block, or use Propagation.REQUIRED.',
  transactionNotAllowed: (dataSource: string) =>
    `Propagation.NEVER refuses to run inside a transaction, and one of data source '${dataSource}' ` +
    'is current (every request or job context is a unit of work). Use Propagation.NOT_SUPPORTED to ' +
    'suspend it instead.',
  timeout: (dataSource: string, ms: number) =>
    `Transaction of data source '${dataSource}' ran longer than its timeout of ${ms} ms: it was ` +
    'cancelled and rolled back. Raise `timeout`, or make the work shorter.',
  acquireTimeout: (dataSource: string, ms: number, poolSize: number | undefined, held: number) =>
    `No connection of data source '${dataSource}' within acquireTimeout (${ms} ms): its pool ` +
    `${poolSize === undefined ? '' : `(size ${poolSize}) `}is exhausted, and this context already ` +
    `holds ${held} connection${held === 1 ? '' : 's'} of it. A REQUIRES_NEW block, ` +
    'sessionFactory.atomic(), open() or runInNewContext() needs a connection of its own while the ' +
    'caller keeps its own, so concurrent requests can take the whole pool and wait for each other. ' +
    'Raise the pool size (TypeORM `poolSize`) to at least concurrent requests × connections each ' +
    'holds at once, commit or close the session before opening an independent one, or raise ' +
    '`acquireTimeout` in TypeOrmContextModule.forRoot().',
  blockSessionClose: (dataSource: string) =>
    `close('${dataSource}') inside a REQUIRES_NEW block: the block owns that session and closes it ` +
    'when it ends. Call close() outside the block.',
} as const;

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Every message says what happened and how to fix it. */
export const messages = {
  noContext: (dataSource: string) =>
    `No session context: session('${dataSource}') ran outside a request, job or runInNewContext(). ` +
    'Register the AutoCommitInterceptor (on by default), wrap the call in @Transactional() or ' +
    'sessionFactory.runInNewContext(), or use sessionFactory.open() for a session of your own.',
  outsideUnitWarning: (dataSource: string, site: string) =>
    `SQL of data source '${dataSource}' ran outside any unit of work, through a context-aware ` +
    `repository or @InjectSession() manager, at ${site}: each statement commits on its own ` +
    '(autocommit), so a failure midway keeps what ran before it. Make the work one unit: ' +
    '@Transactional() on the method, or sessionFactory.runInNewContext() around it ' +
    "(Propagation.NOT_SUPPORTED where autocommit is meant); or set outsideUnit: 'autocommit' in " +
    'TypeOrmContextModule.forRoot() to allow it everywhere. Logged once per call site.',
  outsideUnitRefused: (dataSource: string, site: string) =>
    `A context-aware repository or @InjectSession() manager of data source '${dataSource}' was ` +
    `about to run SQL outside any unit of work, at ${site}, and the module option outsideUnit is ` +
    "'throw': nothing was sent. Make the work one unit: @Transactional() on the method, or " +
    'sessionFactory.runInNewContext() around it (Propagation.NOT_SUPPORTED where autocommit is ' +
    "meant); or set outsideUnit: 'warn' or 'autocommit' in TypeOrmContextModule.forRoot().",
  plainTypeormWarning: (dataSource: string, method: string, site: string) =>
    `Plain TypeORM code of data source '${dataSource}' (${method}() of a repository from ` +
    `TypeOrmModule.forFeature(), of the DataSource or its manager) ran inside a unit of work, at ` +
    `${site}: it runs on a connection of its own and commits on its own, outside the unit's ` +
    'transaction, so a rollback of the unit does not undo it (and a read TypeORM sends to a ' +
    "replica sees neither the unit's writes nor its consistency token). Use the unit's session: " +
    'TypeOrmContextModule.forFeature([...]) instead of TypeOrmModule.forFeature([...]) for ' +
    '@InjectRepository(), @InjectSession() or sessionContext.session() instead of the ' +
    "DataSource's manager; or set plainTypeorm: 'join' in TypeOrmContextModule.forRoot() to " +
    "make plain TypeORM code join the unit ('off' keeps it plain, silently). Logged once per " +
    'call site.',
  plainTypeormJoinedSqlite: (dataSource: string, method: string, site: string) =>
    `Plain TypeORM code of SQLite data source '${dataSource}' (${method}() of a repository from ` +
    `TypeOrmModule.forFeature(), of the DataSource or its manager) ran inside a unit of work, at ` +
    `${site}. SQLite has one connection, which the unit takes for its transaction: on a ` +
    'connection of its own the call would wait for the unit, which waits for it, so it joined the ' +
    "unit's transaction instead (a rollback of the unit undoes it). Use the unit's session " +
    '(TypeOrmContextModule.forFeature([...]) for @InjectRepository(), @InjectSession(), ' +
    "sessionContext.session()), or set plainTypeorm: 'join' to make this the rule silently. " +
    'Logged once per call site.',
  savepointIsolationIgnored: (level: string, site: string) =>
    `transaction('${level}', fn) at ${site} ran inside a unit of work's session, where it is a ` +
    `savepoint of the session's transaction: the isolation level '${level}' does not apply ` +
    '(a level shapes only a transaction that begins). For a transaction of its own at that level, ' +
    'use sessionContext.atomic(fn, { propagation: Propagation.REQUIRES_NEW, isolationLevel }); for ' +
    'the whole unit, @Transactional({ isolationLevel }) where it starts or defaultTransactionOptions. ' +
    'Logged once per call site.',
  slowTransaction: (
    owner: string,
    message: { dataSource: string; outcome?: string; reason?: string; attempt: number },
    ms: number,
    threshold: number,
  ) =>
    `Slow transaction: ${owner} on '${message.dataSource}' ${message.outcome ?? 'ended'}` +
    `${message.reason === undefined ? '' : ` (${message.reason})`} after ${Math.round(ms)} ms, ` +
    `attempt ${message.attempt} (slowTransactionMs: ${threshold}).`,
  slowUnit: (
    message: { kind: string; handler?: string; outcome?: string },
    ms: number,
    threshold: number,
  ) =>
    `Slow unit of work: ${message.kind}${message.handler === undefined ? '' : ` ${message.handler}`} ` +
    `${message.outcome ?? 'ended'} after ${Math.round(ms)} ms from its first session to its end ` +
    `(slowTransactionMs: ${threshold}).`,
  noUnitToken: (method: string) =>
    `No unit of work: sessionContext.${method}() ran outside a request, job or ` +
    'runInNewContext() (or an after-commit callback of one). Check sessionContext.isActive() ' +
    'first, or pass the token to sessionFactory.runInNewContext(fn, { consistencyToken }).',
  noUnitId: () =>
    'No unit of work: sessionContext.unitId() ran outside a request, job or runInNewContext() ' +
    '(or an after-commit callback of one). Check sessionContext.isActive() first where code runs ' +
    'both inside and outside units of work.',
  contextEnded: (dataSource: string) =>
    `The session context has ended: a session of data source '${dataSource}' was used after its ` +
    'request, job or runInNewContext() finished (a stream, a timer or a promise nobody awaited). ' +
    'Await the work before the handler returns, or run it in sessionFactory.runInNewContext() or ' +
    'sessionFactory.atomic().',
  callbackFailed: () =>
    'A transaction callback (afterCommit, afterRollback or afterCompletion) failed after its ' +
    "transaction ended; the transaction's outcome stands (a commit is not undone). The cause " +
    "is the callback's error; the other callbacks ran. Make the side effect idempotent and retry " +
    'it, or record it durably in the transaction (an outbox row) instead of after it.',
  connectionLost: (dataSource: string) =>
    `The connection of data source '${dataSource}' was lost (the server terminated it, a ` +
    'failover or a network failure): the transaction it carried was rolled back by the server, ' +
    'and its later statements are refused. Retry the whole unit of work (a new request, job or ' +
    "block gets a new connection); the cause is the driver's error.",
  commitOutcomeUnknown: (dataSource: string) =>
    `The connection of data source '${dataSource}' was lost while its COMMIT was on its way: the ` +
    'database may have committed the transaction or not, and this connection cannot tell. Make ' +
    'the work safe to repeat (an idempotency key, a unique constraint) before retrying it, or ' +
    "check whether its rows exist; the cause is the driver's error.",
  partlyCommitted: (committed: readonly string[], block: string | undefined) =>
    `${block ?? 'A block that owns its transactions'} failed after part of its work had committed ` +
    `(data source ${committed.map((name) => `'${name}'`).join(', ')}): a commit is not undone, ` +
    'the rest was rolled back. It is not run again, by its retry or by one around it, since that ' +
    'would commit the committed part twice; the cause is the failure. Write to one data source ' +
    'per block (or commit nothing midway) to make it retryable, or make the work safe to repeat ' +
    '(an idempotency key, a unique constraint) before retrying it yourself.',
  lockTables: (dataSource: string) =>
    `LOCK TABLES cannot run inside a session's transaction on MySQL/MariaDB (data source ` +
    `'${dataSource}'): it commits the transaction, and the START TRANSACTION that the session ` +
    "then sends releases the locks. Use SELECT ... FOR UPDATE (TypeORM's pessimistic_write " +
    'lock), or run it outside any session, on a QueryRunner of your own ' +
    '(dataSource.createQueryRunner()).',
  blockEnded: (dataSource: string) =>
    `A stream of data source '${dataSource}' was still open when the NESTED block (or ` +
    'manager.transaction() callback) it was opened in ended, so it was destroyed: the savepoint ' +
    'it read in is gone. Read the stream to its end before the block returns.',
  sessionClosed: (dataSource: string, owner: 'context' | 'block' | 'factory', released: boolean) =>
    `This session of data source '${dataSource}' was ${released ? 'released (queryRunner.release())' : 'closed'}, ` +
    'so it runs nothing more. ' +
    (owner === 'context'
      ? 'Call sessionContext.session() again: it returns a new session of the same context.'
      : owner === 'block'
        ? 'It belonged to a REQUIRES_NEW block, which owns it until the block ends: do not close or ' +
          'release it inside the block.'
        : 'Open a new one with sessionFactory.open(), or use sessionFactory.atomic() to have it ' +
          'committed and closed for you.'),
  sessionBusy: (dataSource: string, operation: string) =>
    `${operation}() of data source '${dataSource}' was called inside a NESTED block, a ` +
    'manager.transaction() callback or a session hook of that session: the transaction cannot ' +
    'end while the block (or hook) that runs in it is still open. Let the block end (return to ' +
    'release its savepoint, throw to roll it back), or use Propagation.REQUIRES_NEW for a ' +
    'transaction of its own that you can commit.',
  transactionAborted: (dataSource: string, savepoint: boolean) =>
    `The ${savepoint ? 'savepoint' : 'transaction'} of data source '${dataSource}' had been aborted ` +
    'by an earlier failed statement, whose error was caught, so the database refuses to commit it ' +
    'and rolled it back (PostgreSQL answers COMMIT with ROLLBACK after any error; MySQL/MariaDB roll ' +
    'a transaction back on a deadlock). To catch a failure and go on, run the statement in a ' +
    'savepoint: @Transactional({ propagation: Propagation.NESTED }), sessionContext.atomic(fn, ' +
    '{ propagation: Propagation.NESTED }) or manager.transaction(fn); or let the error propagate.',
  commitLoop: (dataSources: readonly string[]) =>
    `Committing the context never settled: beforeCommit hooks kept beginning new transactions on ` +
    `${dataSources.map((n) => `'${n}'`).join(', ')} after they had committed. The work was rolled ` +
    'back. Make beforeCommit write only through the session it is given.',
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
  noRuntime: (method: string) =>
    `${method} is @Transactional() but runs on an instance that no Nest application with ` +
    'TypeOrmContextModule created, outside any context (a `new` instance, or a request-scoped ' +
    'instance used outside its request): it cannot know which application, so which database, ' +
    'to use. Get the instance from the application (app.get(...) or injection), or call it ' +
    'inside sessionFactory.runInNewContext(). Called from an onModuleInit hook? Nest may run it ' +
    "before TypeOrmContextModule's own: call it from onApplicationBootstrap instead.",
  shutDown: () =>
    'TypeOrmContextModule has shut down: this @Transactional() call or session arrived after ' +
    'app.close() began (a request still in flight, a timer or a job that outlived the app). ' +
    'Stop the work before closing the application (enableShutdownHooks(), drain queues first).',
  invalidOption: (option: string, value: unknown, expected: string) =>
    `Invalid option ${option}: ${describe(value)}. Expected ${expected}.`,
  transactionalShorthand: (value: string) =>
    `Invalid option @Transactional('${value}'): a string is a propagation (` +
    "@Transactional(Propagation.REQUIRES_NEW)), one of Propagation's members. For a data source " +
    `pass { dataSource: '${value}' }; for anything else, an options object.`,
  unsupportedDriver: (type: string) =>
    `Data source type '${type}' is not supported by nestjs-typeorm-context: use postgres, ` +
    'cockroachdb, mysql, mariadb, aurora-mysql, better-sqlite3 or sqljs.',
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
  sqliteTurnTimeout: (dataSource: string, ms: number, held: number) =>
    `The SQLite data source '${dataSource}' gave no turn on its one connection within acquireTimeout ` +
    `(${ms} ms): other transactions held it or waited before this one` +
    (held > 0
      ? `, and this context already holds it (${held}). On SQLite a REQUIRES_NEW block, ` +
        'sessionFactory.atomic(), open() or runInNewContext() opened while the caller keeps its ' +
        'transaction open waits for that transaction, which waits for it: commit or close the ' +
        'session first, or use Propagation.REQUIRED / NESTED there.'
      : '. Transactions on SQLite run one after another: keep them short (no slow calls while a ' +
        'transaction is open), or raise `acquireTimeout` in TypeOrmContextModule.forRoot().'),
  sqlitePlainTimeout: (dataSource: string, ms: number) =>
    `Plain TypeORM code (a repository, dataSource.manager, query(), createQueryBuilder(), ` +
    `transaction(), a query runner) of SQLite data source '${dataSource}' got no turn on its one ` +
    `connection within acquireTimeout (${ms} ms). Every transaction on SQLite takes its turn, so ` +
    'plain code waits for whatever holds it: a query runner from dataSource.createQueryRunner() ' +
    'that was connected and never released; plain code that runs inside a plain transaction of ' +
    'its own but through another manager (a subscriber writing through event.connection.manager, ' +
    "a repository used inside dataSource.transaction(): use event.manager or the transaction's " +
    "manager); plain code inside a unit of work with plainTypeorm 'off', or in a NOT_SUPPORTED " +
    "block while its caller's transaction is open. Inside a unit use its session, or plainTypeorm " +
    "'warn' / 'join' (they join the unit on SQLite).",
  notSupportedTimeout: (dataSource: string, ms: number, poolSize: number | undefined) =>
    `A NOT_SUPPORTED block of data source '${dataSource}' got no connection within acquireTimeout ` +
    `(${ms} ms): its pool ${poolSize === undefined ? '' : `(size ${poolSize}) `}is exhausted, and ` +
    'the transaction the block suspends may keep its own connection meanwhile, so the block needs a ' +
    'second one. Raise the pool size (TypeORM `poolSize`; with a pool of 1 it can never run while ' +
    'a transaction is open), or avoid NOT_SUPPORTED there (run the work after the transaction, or ' +
    'in it).',
  notSupportedConnectionLost: (dataSource: string) =>
    `The connection of a NOT_SUPPORTED block of data source '${dataSource}' was lost (the server ` +
    'terminated it, a failover or a network failure): the statement that met it auto-commits, so ' +
    "it may or may not have run. Its next statement gets another connection; the cause is the driver's error.",
  beginTimeout: (dataSource: string, ms: number) =>
    `The transaction of data source '${dataSource}' could not begin within acquireTimeout ` +
    `(${ms} ms): its BEGIN got no answer, and the connection was dropped. A pooler in transaction ` +
    'mode (PgBouncer) queues the BEGIN while all its server connections are taken, for example by ' +
    "requests that each hold one and wait for a second one (REQUIRES_NEW, the factory's sessions). " +
    "Give the pooler at least as many server connections per app instance as the app's pool " +
    '(PgBouncer `default_pool_size` ≥ TypeORM `poolSize`), commit or close the session before ' +
    'opening an independent one, or raise `acquireTimeout`. See docs/scaling.md.',
  testAlreadyRunning: () =>
    'A TestTransaction is already running for this application: roll it back (await ' +
    'tx.rollback(), typically in afterEach) before starting the next one.',
  testRolledBack: () =>
    'This TestTransaction was rolled back already: start a new one for the next test ' +
    '(TestTransaction.start(app) in beforeEach).',
  testStillRunning: (ms: number) =>
    `TestTransaction.rollback(): work of the test was still running on its connection after ${ms} ms ` +
    '(a request, job or session the test started and did not await). It was rolled back with ' +
    'the rest and its later statements fail; await every request and job before the test ends.',
  testEnded: () =>
    'This work began during a TestTransaction that was rolled back already (a request, job or ' +
    'session the test started and did not await): its statements fail rather than run on the ' +
    'pool, where they would commit for real. Await every request and job before the test ends.',
  testRolledBackByServer: (dataSource: string) =>
    `The server rolled back the whole transaction of the running TestTransaction on data source ` +
    `'${dataSource}', savepoints included (MySQL/MariaDB do on a deadlock, whichever savepoint it ` +
    'happened in): the data of the test is gone, and its later statements fail rather than run ' +
    'in autocommit mode, where they would commit for real. Test deadlocks, and retrying after ' +
    'one, against a real pool (without TestTransaction).',
  testImplicitCommit: (dataSource: string) =>
    `A statement on data source '${dataSource}' committed the transaction of the running ` +
    'TestTransaction (MySQL/MariaDB commit the open transaction implicitly at DDL such as CREATE, ' +
    'ALTER or DROP TABLE, at TRUNCATE, which repository.clear() sends, and at LOCK TABLES): DDL ' +
    'cannot run inside a test transaction on MySQL/MariaDB. The data of the test so far is ' +
    'committed for real, and its later statements fail rather than run in autocommit mode. Run ' +
    'schema changes before TestTransaction.start() (in beforeAll), and use DELETE instead of clear().',
  testConnectionBusyPlain: (dataSource: string, ms: number) =>
    `A query of data source '${dataSource}' through plain TypeORM (the DataSource's own ` +
    'query(), manager or repositories, also a forFeature() repository used outside any context ' +
    `as in an afterCommit callback) waited ${ms} ms (acquireTimeout) for the one connection of ` +
    'the running TestTransaction, which a unit of work of the app holds: most likely that unit ' +
    'waits for this query (without the test transaction it would run on a connection of its ' +
    'own). Inside a unit of work use its session (sessionContext.session(), forFeature() ' +
    'repositories), or test this code path against a real pool (without TestTransaction).',
  testConnectionBusyNotSupported: (dataSource: string, ms: number) =>
    `A NOT_SUPPORTED block of data source '${dataSource}' waited ${ms} ms (acquireTimeout) for ` +
    'the one connection of the running TestTransaction: another unit of work than the one the ' +
    'block suspends holds it (the block runs its statements in the turn of the transaction it ' +
    'suspends), most likely waiting for this block. Await the other unit before running the ' +
    'block, or test this code path against a real pool (without TestTransaction).',
  testStartTimeout: (dataSource: string, ms: number) =>
    `TestTransaction.start() got no connection of data source '${dataSource}' within ` +
    `acquireTimeout (${ms} ms) to hold for the test. Something still holds them: work of an ` +
    'earlier test that was not awaited, or a query runner from dataSource.createQueryRunner() ' +
    'that was connected and never released (on SQLite, whose one connection is taken in turns, ' +
    'one such runner is enough). Await every request and job, and release() every runner.',
  sqliteNotSupportedTimeout: (dataSource: string, ms: number) =>
    `A NOT_SUPPORTED block of SQLite data source '${dataSource}' got no turn on its one connection ` +
    `within acquireTimeout (${ms} ms). Its statements run outside the transaction it suspends, on ` +
    'a turn of their own, and that transaction keeps the connection until it ends: on SQLite the ' +
    'block can run only while its caller has no open transaction (before its first statement, or ' +
    'after sessionContext.commit()). Run the work after the transaction, or in it.',
  testConnectionBusy: (dataSource: string, ms: number) =>
    `A session of data source '${dataSource}' waited ${ms} ms (acquireTimeout) for the one ` +
    'connection of the running TestTransaction, on which every session of the app takes its turn. ' +
    'Another session holds it and does not end: most likely it waits for this one (the two would ' +
    'run in parallel on two connections without the test transaction). Await the first before ' +
    'starting the second, or test this code path against a real pool (without TestTransaction).',
  replicaWrite: (dataSource: string, label: string, statement: string) =>
    `${statement} refused: the read-only transaction of data source '${dataSource}' begun by ` +
    `${label} runs on a replica (readOnly: true sends it there, readReplicas: 'readOnly'), and a ` +
    'replica cannot write. Remove readOnly: true from that transaction (it then runs on the ' +
    'primary), or do the write in a transaction of its own without readOnly ' +
    '(Propagation.REQUIRES_NEW, sessionFactory.atomic()).',
  replicaUnavailable: (dataSource: string, replicas: number) =>
    `No replica of data source '${dataSource}' accepted a connection (${replicas} configured in ` +
    "TypeORM's replication.slaves; the cause is the last driver error), and the module option " +
    "replicaDown is 'fail'. Set replicaDown: 'primary' in TypeOrmContextModule.forRoot() to run " +
    'read-only transactions on the primary during an outage, or pass { readOnly: true, ' +
    'replica: false } to keep this one on the primary.',
  tokensUnavailable: (dataSource: string, reason: unknown) =>
    `The primary of data source '${dataSource}' cannot tell its WAL position (${String(reason)}): ` +
    'its commits make no consistency tokens, and reads of clients that wrote may be stale on its ' +
    'replicas. Grant the role EXECUTE on pg_current_wal_insert_lsn(), pg_walfile_name_offset() ' +
    'and txid_current_if_assigned(), or read with { readOnly: true, replica: false } where a read ' +
    'must see the latest write.',
  replicaLagging: (dataSource: string, replica: string, lag: number, max: number) =>
    `The ${replica} of data source '${dataSource}' replays ${lag} ms behind the primary, more than ` +
    `maxReplicaLag (${max} ms): it gets no reads until it catches up.`,
  replicaCaughtUp: (dataSource: string, replica: string, lag: number) =>
    `The ${replica} of data source '${dataSource}' caught up (${lag} ms behind the primary): it ` +
    'gets reads again.',
  replicasLagging: (dataSource: string, max: number, fallBack: boolean) =>
    `Every replica of data source '${dataSource}' replays more than maxReplicaLag (${max} ms) ` +
    'behind the primary' +
    (fallBack
      ? ': read-only transactions run on the primary until one catches up.'
      : ", and the module option replicaDown is 'fail'. Set replicaDown: 'primary' to run them " +
        'on the primary meanwhile, or raise maxReplicaLag.'),
  replicasBehind: (dataSource: string, position: string, wait: number) =>
    `No replica of data source '${dataSource}' replayed the primary up to ${position} within ` +
    `${wait} ms, and this unit of work carries a consistency token that requires it (its client ` +
    "wrote up to there), with consistency.behind: 'fail'. Set consistency.behind: 'primary' to " +
    'read on the primary then, or raise consistency.wait.',
  readsOnPrimary: (dataSource: string, reads: number, wait: number) =>
    `${reads} read-only transaction(s) of data source '${dataSource}' ran on the primary: their ` +
    `unit's consistency token was ahead of every replica for ${wait} ms (consistency.wait). ` +
    'Logged at most once a minute.',
  invalidConsistencyToken: (token: unknown) =>
    `${JSON.stringify(String(token)).slice(0, 120)} is not a consistency token. Pass what ` +
    "sessionContext.consistencyToken() returned (e.g. 'default=16/B374D848'), or undefined for none.",
  replicasUnsupported: (dataSource: string, type: string, asked: boolean) =>
    `Data source '${dataSource}' (${type}) has TypeORM replication, but routing read-only ` +
    "transactions to replicas (readReplicas: 'readOnly') is PostgreSQL-only. " +
    (asked
      ? "Set readReplicas: 'off' in TypeOrmContextModule.forRoot(), or leave the option out: " +
        'every transaction then runs on the primary.'
      : `Every transaction of '${dataSource}' runs on the primary; set readReplicas: 'off' in ` +
        'TypeOrmContextModule.forRoot() to say so and silence this warning.'),
  implicitCommit: (dataSource: string) =>
    `A statement of data source '${dataSource}' (DDL, TRUNCATE, repository.clear()...) ` +
    'made MySQL/MariaDB commit the open transaction implicitly: the work before it is committed ' +
    'and can no longer be rolled back. The session began a new transaction for what follows. Run ' +
    'such statements outside a transaction (Propagation.NOT_SUPPORTED, or in a migration).',
  blockSessionClose: (dataSource: string) =>
    `close('${dataSource}') inside a REQUIRES_NEW block: the block owns that session and closes it ` +
    'when it ends. Call close() outside the block.',
  jobMethodNotOnClass: (owner: string, key: string) =>
    `${owner}.${key} is not a method of its class (an arrow function in a property?): there is ` +
    'nothing to wrap before BullMQ takes it, so its jobs run without a unit of work. Declare it ' +
    `as a method (async ${key}(job) { ... }), or wrap its body in sessionFactory.runInNewContext().`,
  microserviceWithoutAppConfig: () =>
    'A microservice was connected to this HTTP app without { inheritAppConfig: true }: the global ' +
    'AutoCommitInterceptor does not reach its message handlers, so they run outside any unit of ' +
    'work, as code outside a request does (sessionContext.session() throws there; context-aware ' +
    'repositories and @InjectSession() managers are not rolled back when a handler fails). ' +
    'Connect it with ' +
    'app.connectMicroservice(options, { inheritAppConfig: true }), or put ' +
    '@UseInterceptors(AutoCommitInterceptor) on its controllers.',
  graphqlOperationUnowned: (resolver: string) =>
    `A GraphQL resolver (${resolver}) ran in an HTTP request whose GraphQL operation has no unit ` +
    'of work of its own: each root resolver then commits alone when it returns, and field ' +
    "resolvers find its unit ended. Operations get one unit with @nestjs/apollo's driver (its " +
    "GraphQLModule must see TypeOrmContextModule's providers: keep the module global, or in an " +
    "`include` list) and @nestjs/mercurius's; with another driver, run each operation in " +
    'sessionFactory.runInNewContext(), or set `graphql: false` to keep this behaviour without ' +
    'the warning (see docs/transports.md).',
  graphqlCommitFailed: () =>
    'Internal server error: the changes of this operation were not committed.',
  graphqlEndFailed: () => 'The unit of work of a GraphQL operation failed to end',
} as const;

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || value === undefined) return String(value);
  if (typeof value === 'function') return 'a function';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * The randomized model-based test of read replicas (docs/fuzz.md, "The replica model"): simulated
 * clients, each carrying its own consistency token, write and read concurrently on four apps over
 * one primary and two hot standbys while replay is paused and resumed; each read is checked
 * against what its client committed, each token against the commits, the servers afterwards.
 * `FUZZ_REPLICAS_RUNS` programs (default 40), seeded by `FUZZ_REPLICAS_SEED`; `FUZZ_REPLICAS_PATH`
 * replays one shrunk failure; `FUZZ_REPLICAS_PROGRAM` runs a printed program;
 * `FUZZ_REPLICAS_SHRINK=0` stops at the first failure.
 */
import fc from 'fast-check';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { eventually } from '../support/create-app.js';
import { freePort } from '../support/free-port.js';
import { type Standby, startStandby, waitForReplay } from '../support/standby.js';
import {
  checkedOutBoth,
  createReplicaApp,
  pair,
  portOf,
  type ReplicaApp,
  runOn,
} from '../replicas/replica-app.js';
import {
  FuzzReplicaController,
  FuzzReplicaService,
  type Sight,
  type WriteAnswer,
  messageOf,
} from './fuzz-replicas-app.js';
import {
  APPS,
  type ClientStep,
  type EnvOp,
  type Program,
  type Read,
  type Write,
  expectedWrite,
  failure,
  lsnOf,
  programArb,
  tokenLsn,
} from './model.js';
import { regressions } from './regressions.js';

const runs = Number(process.env.FUZZ_REPLICAS_RUNS ?? 40);
const seed =
  process.env.FUZZ_REPLICAS_SEED === undefined
    ? Date.now() ^ (Math.random() * 0x100000000)
    : Number(process.env.FUZZ_REPLICAS_SEED);
const path = process.env.FUZZ_REPLICAS_PATH;

const HEADER = 'x-consistency-token';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fails if `promise` does not settle within `ms`: a hang is a failure too. */
async function bounded<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A client's state in the model: its latest token and its commits, in commit order. */
interface Client {
  /** The client's rows start with this. */
  prefix: string;
  token?: string;
  groups: string[][];
}

/** What the test saw over all programs (printed at the end: how much each path ran). */
const stats = {
  programs: 0,
  tokenReadsOnReplica: 0,
  tokenReadsOnPrimary: 0,
  plainReadsOnReplica: 0,
  plainReadsOnPrimary: 0,
  staleReads: 0,
  writesCommitted: 0,
  writesFailed: 0,
  pauses: 0,
};

describe('randomized model-based test of read replicas and consistency tokens', () => {
  const { primary, replica } = pair();
  const primaryPort = portOf(primary);
  let second: Standby;
  let standbys: string[];
  let apps: ReplicaApp[] = [];
  let program = 0;

  beforeAll(async () => {
    second = await startStandby(primary, await freePort());
    standbys = [replica, second.url];
    for (const [index, spec] of APPS.entries()) {
      apps.push(
        await createReplicaApp({
          slaves: standbys.slice(0, spec.slaves),
          context: {
            consistency: { header: HEADER, wait: spec.wait, ...(index === 3 && { refresh: 10 }) },
            ...(index === 3 && { maxReplicaLag: 150 }),
          },
          controllers: [FuzzReplicaController],
          providers: [FuzzReplicaService],
        }),
      );
    }
  }, 60_000);

  afterAll(async () => {
    for (const url of standbys ?? []) await runOn(url, 'SELECT pg_wal_replay_resume()');
    for (const t of apps) await t.close();
    apps = [];
    await second?.stop();
    console.log(`replica fuzz: ${JSON.stringify(stats)}`);
  });

  /** The ports a read of app `index` may run on: the primary and that app's replicas. */
  const portsOf = (index: number) =>
    new Set([primaryPort, ...standbys.slice(0, APPS[index]!.slaves).map(portOf)]);

  /** Runs `sql` on every server, returning each answer's first row. */
  const onEvery = (sql: string) =>
    Promise.all([primary, ...standbys].map(async (url) => (await runOn(url, sql))[0]!));

  /** Runs the environment lane: pauses, resumes, sleeps. */
  async function runEnv(env: EnvOp[]): Promise<void> {
    for (const op of env) {
      if (op.kind === 'sleep') await sleep(op.ms);
      else {
        if (op.kind === 'pause') stats.pauses++;
        await runOn(standbys[op.standby]!, `SELECT pg_wal_replay_${op.kind}()`);
      }
    }
  }

  /** Runs one client's steps in order, checking each against the model; returns what broke. */
  async function runClient(
    client: Client,
    steps: ClientStep[],
    tokens: string[],
  ): Promise<string[]> {
    const problems: string[] = [];
    for (const [i, { delay, op }] of steps.entries()) {
      if (delay > 0) await sleep(delay);
      const tag = `${client.prefix}${i}`;
      try {
        if (op.kind === 'read') {
          const copies = Array.from({ length: op.copies ?? 1 }, () => runRead(client, op));
          for (const seen of await Promise.all(copies)) checkRead(client, tag, op, seen, problems);
        } else await runWrite(client, tag, op, tokens, problems);
      } catch (error) {
        problems.push(`${tag} ${JSON.stringify(op)} threw: ${messageOf(error)}`);
      }
    }
    return problems;
  }

  /** Runs a write, checks its outcome and token, and notes its commits in the model. */
  async function runWrite(
    client: Client,
    tag: string,
    op: Write,
    tokens: string[],
    problems: string[],
  ): Promise<void> {
    const t = apps[op.app]!;
    const model = expectedWrite(tag, op);
    const before = client.token;
    const say = (what: string) => problems.push(`${tag} ${JSON.stringify(op)}: ${what}`);
    let token: string | undefined;
    if (op.kind === 'atomic') {
      const factory = t.app.get(SessionFactory);
      const context = t.app.get(SessionContext);
      const service = t.app.get(FuzzReplicaService);
      const outcome = await factory.runInNewContext(
        async () => {
          if (op.carry === 'consistentWith') context.consistentWith(before);
          let inner: string | undefined;
          let error: string | undefined;
          try {
            await factory.atomic(async () => {
              inner = await service.writeWithNested(tag, op.rows, op.nested);
              if (op.fail) throw new Error(failure(tag));
            });
          } catch (caught) {
            error = messageOf(caught);
          }
          return { inner, error, token: context.consistencyToken() };
        },
        op.carry === 'option' ? { consistencyToken: before } : undefined,
      );
      const expected = { inner: model.inner, error: model.ok ? undefined : failure(tag) };
      const got = { inner: outcome.inner, error: outcome.error };
      if (JSON.stringify(got) !== JSON.stringify(expected))
        say(`reported ${JSON.stringify(got)}, the model ${JSON.stringify(expected)}`);
      token = outcome.token;
      // Outside HTTP the unit's token is the carried one until a commit moves it.
      if (model.groups.length === 0 && token !== before)
        say(`nothing committed, yet the token went from ${before} to ${token}`);
    } else {
      const route = op.kind === 'commitMid' ? 'commit-mid' : op.kind;
      const call = t.http().post(`/fzr/${route}`);
      if (before !== undefined) call.set(HEADER, before);
      const response = await call.send({ ...op, tag, client: client.prefix });
      const body = response.body as WriteAnswer & { message?: string };
      const got = { status: response.status, message: body.message, inner: body.inner };
      const expected = {
        status: model.ok ? 201 : 500,
        message: model.ok ? undefined : failure(tag),
        inner: model.ok ? model.inner : undefined,
      };
      if (JSON.stringify(got) !== JSON.stringify(expected))
        say(`answered ${JSON.stringify(got)}, the model ${JSON.stringify(expected)}`);
      token = response.headers[HEADER] as string | undefined;
      if (model.groups.length === 0 && token !== undefined)
        say(`nothing committed, yet the response sent the token ${token}`);
      const readsOwn = op.kind === 'request' && op.rows === 0;
      if ((op.kind === 'commitMid' && op.readAfter) || readsOwn) {
        // The request's own transaction, or a read-only one after its commit (the unit used the
        // primary): the primary, seeing every commit of the client so far.
        const committed = [...client.groups.flat(), ...(model.groups[0] ?? [])].sort();
        const read = body.read;
        if (read === undefined) say('its read reported nothing');
        else if (read.replica || read.port !== primaryPort)
          say(`its read ran on ${read.port} (replica: ${read.replica})`);
        else if (JSON.stringify([...read.texts].sort()) !== JSON.stringify(committed))
          say(`its read saw ${read.texts}, committed: ${committed}`);
      }
    }
    if (model.groups.length > 0) {
      stats.writesCommitted++;
      if (token === undefined) say('it committed, yet no token came back');
      else if (before !== undefined && !(tokenLsn(token) > tokenLsn(before)))
        say(`it committed, yet its token ${token} is not past the carried ${before}`);
      else {
        client.token = token;
        tokens.push(token);
      }
    } else stats.writesFailed++;
    client.groups.push(...model.groups);
  }

  /** Runs a read as `op` says, with the client's token or without. */
  async function runRead(client: Client, op: Read): Promise<Sight & { header?: string }> {
    const t = apps[op.app]!;
    const token = op.withToken ? client.token : undefined;
    if (op.via.startsWith('http')) {
      const call = t.http().get('/fzr/read').query({ prefix: client.prefix, via: op.via });
      if (token !== undefined) call.set(HEADER, token);
      const response = await call;
      if (response.status !== 200)
        throw new Error(`status ${response.status}: ${JSON.stringify(response.body)}`);
      return { ...(response.body as Sight), header: response.headers[HEADER] as string };
    }
    const factory = t.app.get(SessionFactory);
    const context = t.app.get(SessionContext);
    const service = t.app.get(FuzzReplicaService);
    const read = () =>
      op.via === 'directAtomic'
        ? service.atomicRead(client.prefix)
        : op.via === 'directOpen'
          ? service.openRead(client.prefix)
          : service.report(client.prefix);
    if (op.carry === 'option') return factory.runInNewContext(read, { consistencyToken: token });
    return factory.runInNewContext(() => {
      context.consistentWith(token);
      return read();
    });
  }

  /**
   * Checks a read against the client's commits: with the token, or on the primary, it sees every
   * one; without, a prefix of them (a snapshot); on a replica with the token, that replica had
   * replayed past the token's position when the read began.
   */
  function checkRead(
    client: Client,
    tag: string,
    op: Read,
    seen: Sight & { header?: string },
    problems: string[],
  ): void {
    const say = (what: string) => problems.push(`${tag} ${JSON.stringify(op)}: ${what}`);
    const carried = op.withToken && client.token !== undefined;
    const committed = client.groups.flat().sort();
    const visible = [...seen.texts].sort();
    const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);
    if (seen.header !== undefined) say(`a read sent a token back: ${seen.header}`);
    if (!portsOf(op.app).has(seen.port) || seen.replica !== (seen.port !== primaryPort))
      say(`ran on port ${seen.port} (replica: ${seen.replica}), not a server of its app`);
    if (seen.replica) stats[carried ? 'tokenReadsOnReplica' : 'plainReadsOnReplica']++;
    else stats[carried ? 'tokenReadsOnPrimary' : 'plainReadsOnPrimary']++;
    if (carried || !seen.replica) {
      if (!same(visible, committed))
        say(
          `on ${seen.port} saw [${visible}], the client committed [${committed}] (token ${client.token})`,
        );
    } else {
      const prefixes = client.groups.map((_, k) =>
        client.groups
          .slice(0, k + 1)
          .flat()
          .sort(),
      );
      if (!same(visible, []) && !prefixes.some((rows) => same(visible, rows)))
        say(`saw [${visible}]: not the rows of a prefix of the client's commits [${committed}]`);
      if (visible.length < committed.length) stats.staleReads++;
    }
    if (carried && seen.replica) {
      if (seen.replayed === null) say('ran on a replica that reported no replay position');
      else if (lsnOf(seen.replayed) < tokenLsn(client.token!))
        say(`ran on ${seen.port}, replayed to ${seen.replayed}, behind its token ${client.token}`);
    }
  }

  /** Resolves once no app has a connection checked out and no server has one idle in transaction. */
  const clean = () =>
    eventually(async () => {
      if (apps.some((t) => checkedOutBoth(t.dataSource) !== 0)) return false;
      const idle = await onEvery(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
      );
      return idle.every((row) => row.n === 0);
    }, 5000);

  /** Runs `p` and checks every read, write, token, row and server (see the file's comment). */
  async function check(p: Program): Promise<void> {
    program++;
    stats.programs++;
    const unhandled: string[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(messageOf(reason));
    process.on('unhandledRejection', onUnhandled);
    // The prefix ends in `o` so that client 1's rows are not client 10's; tags extend it.
    const clients: Client[] = p.clients.map((_, c) => ({
      prefix: `r${program}c${c}o`,
      groups: [],
    }));
    const tokens: string[] = [];
    try {
      const lanes = Promise.all([
        runEnv(p.env),
        ...p.clients.map((steps, c) => runClient(clients[c]!, steps, tokens)),
      ]);
      let problems: string[];
      try {
        const [, ...found] = await bounded(lanes, 'the program', 30_000);
        problems = found.flat();
      } finally {
        for (const url of standbys) await runOn(url, 'SELECT pg_wal_replay_resume()');
      }

      // Replay resumed on both standbys, and both catch up with the primary.
      const states = await Promise.all(
        standbys.map(
          async (url) =>
            (await runOn(url, 'SELECT pg_get_wal_replay_pause_state() AS s'))[0]!.s as string,
        ),
      );
      if (states.some((state) => state !== 'not paused'))
        problems.push(`replay not resumed: ${states}`);
      const [{ lsn }] = (await runOn(
        primary,
        'SELECT pg_current_wal_insert_lsn()::text AS lsn',
      )) as [{ lsn: string }];
      for (const url of standbys) await waitForReplay(url, lsn);
      // Every token names a position the primary reached.
      for (const token of tokens)
        if (tokenLsn(token) > lsnOf(lsn))
          problems.push(`token ${token} is past the primary (${lsn})`);

      // Exactly the committed rows, on the primary and on each standby; no failed write's.
      const committed = clients.flatMap((client) => client.groups.flat()).sort();
      for (const url of [primary, ...standbys]) {
        const rows = await runOn(
          url,
          `SELECT text FROM replica_item WHERE text LIKE 'r${program}c%' ORDER BY text`,
        );
        const texts = rows.map((row) => row.text as string).sort();
        if (JSON.stringify(texts) !== JSON.stringify(committed))
          problems.push(`${url} holds [${texts}], the model [${committed}]`);
      }

      // Nothing checked out, nothing idle in transaction, on any app or server.
      await clean().catch((error: unknown) => problems.push(messageOf(error)));
      await new Promise((resolve) => setImmediate(resolve));
      problems.push(...unhandled.map((reason) => `unhandled rejection: ${reason}`));
      if (problems.length > 0)
        throw new Error(
          `program ${program}: ${JSON.stringify(p)}\n(FUZZ_REPLICAS_PROGRAM takes it as it is)\n${problems.join('\n')}`,
        );
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  }

  it(`${runs} random programs keep every read-your-writes promise (seed ${seed})`, async () => {
    await fc.assert(
      fc.asyncProperty(programArb, (p) => check(p)),
      { seed, numRuns: runs, path, endOnFailure: process.env.FUZZ_REPLICAS_SHRINK === '0' },
    );
  }, 600_000);

  for (const { name, program: p } of regressions) {
    it(`regression: ${name}`, () => check(p), 60_000);
  }

  // FUZZ_REPLICAS_PROGRAM: a program printed by a failure (its JSON), replayed as it is.
  if (process.env.FUZZ_REPLICAS_PROGRAM) {
    it('replays FUZZ_REPLICAS_PROGRAM', async () => {
      // fast-check prints the counterexample as the property's arguments: `[program]`.
      const given = JSON.parse(process.env.FUZZ_REPLICAS_PROGRAM!) as Program | [Program];
      await check(Array.isArray(given) ? given[0] : given);
    }, 60_000);
  }
});

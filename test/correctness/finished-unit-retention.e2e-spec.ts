import { Controller, Get } from '@nestjs/common';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DataSource } from 'typeorm';
import { SessionContext } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { engines } from '../support/engines.js';

setFlagsFromString('--expose-gc');
/** V8's collector, reachable without starting Jest with `--expose-gc`. */
const collectGarbage = runInNewContext('gc') as () => void;

/** A weak reference to each request's session manager: reachable only while its unit is. */
const sessions: Array<WeakRef<object>> = [];
/** Lets the requests of a round reach the pool together. */
let gate: Promise<void> = Promise.resolve();

@Controller('retention')
class RetentionController {
  constructor(
    private readonly context: SessionContext,
    private readonly dataSource: DataSource,
  ) {}

  /** Plain TypeORM in the request (`plainTypeorm: 'warn'`, the default: TypeORM's own runner). */
  @Get('plain')
  async plain() {
    sessions.push(new WeakRef(this.context.session())); // reachable while the unit is
    await gate;
    await this.dataSource.query('SELECT 1');
    return 'ok';
  }

  @Get('read')
  async read() {
    const manager = this.context.session();
    sessions.push(new WeakRef(manager));
    await gate;
    await manager.query('SELECT 1');
    return 'ok';
  }
}

/**
 * Collects garbage until every weak reference is cleared, or for about a second (the library's
 * one wait timer stops 25 ms after its last waiter); returns how many are still reachable.
 */
async function survivors(rounds = 50): Promise<number> {
  for (let i = 0; i < rounds; i++) {
    // A WeakRef keeps its target until the job that made or read it ends: collect between turns.
    await new Promise((resolve) => setTimeout(resolve, 20));
    collectGarbage();
    if (sessions.every((ref) => ref.deref() === undefined)) return 0;
  }
  return sessions.filter((ref) => ref.deref() !== undefined).length;
}

describe.each(engines)('A finished unit is not kept by the pool ($name)', (engine) => {
  let app: TestApp;

  beforeEach(() => {
    sessions.length = 0;
  });

  afterEach(async () => {
    await app?.close();
  });

  it('connections the pool opened for units, and gave back after them, keep none of them', async () => {
    app = await createTestApp(engine, { controllers: [RetentionController], poolSize: 4 });
    // The first round makes the pool open its connections inside the units asking for them (their
    // sockets are made there, and pg keeps the ask that opened each); every round gives them back
    // from inside a unit (pg-pool starts each connection's idle timer there).
    for (let round = 0; round < 3; round++) {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      const responses = Array.from({ length: 4 }, () => app.http().get('/retention/read'));
      const sent = Promise.all(responses.map((response) => response.then((r) => r.status)));
      setTimeout(open, 50);
      expect(await sent).toEqual([200, 200, 200, 200]);
    }
    await app.expectClean();
    expect(sessions).toHaveLength(12);
    // The four connections are still open and idle in the pool: none keeps a unit of the past.
    expect(await survivors()).toBe(0);
  });

  it("plain TypeORM's connections (opened, given back and waited for inside requests) keep no request", async () => {
    app = await createTestApp(engine, { controllers: [RetentionController], poolSize: 2 });
    for (let round = 0; round < 2; round++) {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      const responses = Array.from({ length: 6 }, () => app.http().get('/retention/plain'));
      const sent = Promise.all(responses.map((response) => response.then((r) => r.status)));
      setTimeout(open, 50);
      expect(await sent).toEqual(Array.from({ length: 6 }, () => 200));
    }
    await app.expectClean();
    expect(sessions).toHaveLength(12);
    expect(await survivors()).toBe(0);
  });

  it('units that waited for a full pool, and were handed connections others gave back, are not kept either', async () => {
    app = await createTestApp(engine, { controllers: [RetentionController], poolSize: 2 });
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    // Eight at once on two connections: six wait (the one wait timer starts in one of them), and
    // each connection goes from a unit that gives it back to a unit that waited for it.
    const responses = Array.from({ length: 8 }, () => app.http().get('/retention/read'));
    const sent = Promise.all(responses.map((response) => response.then((r) => r.status)));
    setTimeout(open, 50);
    expect(await sent).toEqual(Array.from({ length: 8 }, () => 200));
    await app.expectClean();
    expect(sessions).toHaveLength(8);
    expect(await survivors()).toBe(0);
  });
});

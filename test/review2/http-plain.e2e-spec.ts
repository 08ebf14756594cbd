import { Transform } from 'node:stream';
import { Controller, Get, StreamableFile } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { TypeOrmContextModule } from '../../src/index.js';
import { eventually, type TestApp, wrap } from '../support/create-app.js';
import { checkedOut, type Engine, engines, idleInTransaction } from '../support/engines.js';
import { Example } from '../support/example.entity.js';
import { Reading } from '../correctness/streamed-responses-support.js';
import {
  clear,
  count,
  holder,
  R2Author,
  R2Book,
  R2Node,
  review2Options,
  within,
} from './review2-app.js';

const probe: { engine?: Engine; dataSource?: DataSource; seen: string[]; ids: string[] } = {
  seen: [],
  ids: [],
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The transaction id and backend of whatever `dataSource.query()` runs on here. */
async function where(dataSource: DataSource): Promise<string> {
  const engine = probe.engine!;
  const [tx]: Array<{ id: unknown }> =
    engine.name === 'postgres'
      ? await dataSource.query('SELECT txid_current()::text AS id')
      : await dataSource.query('SELECT CONNECTION_ID() AS id');
  const [backend]: Array<{ id: unknown }> = await dataSource.query(engine.backendSql);
  return `${String(tx!.id)}/${String(backend!.id)}`;
}

@Controller('plain')
class PlainController {
  constructor(private readonly dataSource: DataSource) {}

  /** A plain write, then a long export streamed from a plain query builder. */
  @Get('export')
  async export() {
    await this.dataSource.getRepository(Example).insert({ text: 'before_export' });
    const source =
      probe.engine!.name === 'postgres'
        ? '(SELECT generate_series(1, 1000000) AS g)'
        : '(SELECT seq AS g FROM seq_1_to_1000000)';
    const rows = await this.dataSource
      .createQueryBuilder()
      .select('s.g', 'g')
      .from(source, 's')
      .stream();
    return new StreamableFile(
      rows.pipe(
        new Transform({
          writableObjectMode: true,
          transform(row: Record<string, unknown>, _encoding, done) {
            done(null, `${Object.values(row).join(',')}\n`);
          },
        }),
      ),
    );
  }

  /** Writes, waits while the client leaves, writes again: all through plain TypeORM. */
  @Get('slow')
  async slow() {
    const examples = this.dataSource.getRepository(Example);
    try {
      await examples.insert({ text: 'slow_1' });
      probe.ids.push(await where(this.dataSource));
      probe.seen.push('first');
      await sleep(400);
      await this.dataSource.query("INSERT INTO example (text) VALUES ('slow_2')");
      probe.ids.push(await where(this.dataSource));
      await this.dataSource.transaction((m) => m.insert(Example, { text: 'slow_3' }));
      probe.seen.push('done');
    } catch (error) {
      probe.seen.push((error as Error).name);
      throw error;
    }
    return 'ok';
  }

  /** Everything plain TypeORM does, with a pool of one connection. */
  @Get('everything')
  async everything() {
    const ds = this.dataSource;
    holder.hook = 'manager';
    const author = await ds.getRepository(R2Author).save({ name: 'a' });
    const book = ds.getRepository(R2Book).create({ title: 't', editor: author });
    book.author = Promise.resolve(author);
    await ds.getRepository(R2Book).save(book);
    const loaded = await ds.getRepository(R2Book).findOneByOrFail({ title: 't' });
    const lazy = await loaded.author;
    const nodes = ds.getTreeRepository(R2Node);
    const root = await nodes.save(nodes.create({ name: 'root' }));
    await nodes.save(nodes.create({ name: 'leaf', parent: root }));
    const trees = await nodes.findTrees();
    await ds.query("INSERT INTO example (text) VALUES ('q')");
    await ds.transaction(async (m) => {
      await m.insert(Example, { text: 'tx' });
      await ds.manager.insert(Example, { text: 'inner_plain' });
    });
    const built = await ds.createQueryBuilder(Example, 'e').getCount();
    holder.hook = 'off';
    return { lazy: lazy?.name, tree: trees[0]?.children.length, built, where: await where(ds) };
  }
}

describe.each(engines)("plainTypeorm 'join' over HTTP ($name)", (engine) => {
  let t: TestApp;
  let port: number;
  const readings: Reading[] = [];

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(review2Options(engine, 1)),
        TypeOrmContextModule.forRoot({ plainTypeorm: 'join', acquireTimeout: 3000 }),
      ],
      controllers: [PlainController],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as { port: number }).port;
    t = wrap(app, engine, app.get(DataSource));
    holder.dataSource = t.dataSource;
  });
  beforeEach(async () => {
    probe.engine = engine;
    probe.seen = [];
    probe.ids = [];
    await clear(t.dataSource);
  });
  afterEach(async () => {
    for (const reading of readings.splice(0)) reading.close();
    await t.expectClean();
  });
  afterAll(() => t.close());

  it('a client that abandons a stream of a plain query builder releases the connection and rolls the plain write back', async () => {
    const download = new Reading(port, '/plain/export');
    readings.push(download);
    await download.waitFor('\n', 'the first rows of the plain export');
    download.close();
    await eventually(async () => checkedOut(t.dataSource) === 0, 5000);
    expect(await idleInTransaction(engine, t.dataSource)).toBe(0);
    expect(await t.texts()).toEqual([]);
  });

  it('a client that aborts mid-handler: the plain writes stay one transaction, all or nothing', async () => {
    const slow = new Reading(port, '/plain/slow');
    readings.push(slow);
    await eventually(() => probe.seen.includes('first'));
    slow.close();
    await eventually(() => probe.seen.length === 2, 5000);
    await t.expectClean();
    const texts = await t.texts();
    expect([[], ['slow_1', 'slow_2', 'slow_3']]).toContainEqual(texts);
    if (probe.ids.length === 2) expect(probe.ids[0]).toBe(probe.ids[1]);
  });

  it('with a pool of one connection, plain code in the unit never waits for a second one', async () => {
    const response = await within(
      t
        .http()
        .get('/plain/everything')
        .then((r) => r),
      8000,
    );
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ lazy: 'a', tree: 1, built: 3 });
    await t.expectClean();
    expect(await t.texts()).toEqual(['inner_plain', 'q', 'tx']);
    expect(await count(t.dataSource, 'r2_audit')).toBe(1);
    expect(await count(t.dataSource, 'r2_node')).toBe(2);
  });
});

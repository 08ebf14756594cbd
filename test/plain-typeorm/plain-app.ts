import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Controller,
  Get,
  Injectable,
  type LoggerService,
  Module,
  Post,
  Query,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InjectDataSource, InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import {
  DataSource,
  type EntitySubscriberInterface,
  EventSubscriber,
  type InsertEvent,
  type Repository,
} from 'typeorm';
import {
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/**
 * A typeorm-transactional-style service layer: repositories from `TypeOrmModule.forFeature()`,
 * the DataSource's manager and query(), nothing of this library but `@Transactional()`.
 */
@Injectable()
export class PlainService {
  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    @InjectDataSource() readonly dataSource: DataSource,
  ) {}

  /** One row through the repository. */
  add(text: string): Promise<Example> {
    return this.examples.save({ text }); // @site add
  }

  /** One row through the DataSource's manager. */
  addThroughManager(text: string): Promise<unknown> {
    return this.dataSource.manager.insert(Example, { text }); // @site manager
  }

  /** One row through dataSource.query(). */
  addThroughQuery(text: string): Promise<unknown> {
    return this.dataSource.query(`INSERT INTO example (text) VALUES ('${text}')`); // @site query
  }

  /** Two rows, then a failure: half done. */
  @Transactional()
  async halfDone(text: string): Promise<void> {
    await this.add(`${text}_1`);
    await this.add(`${text}_2`);
    throw new Error('half done');
  }

  /** A block of its own. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async ownTransaction(text: string): Promise<void> {
    await this.add(text);
  }

  /** Autocommit, on purpose. */
  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async notSupported(text: string): Promise<void> {
    await this.add(text);
  }
}

/** HTTP entry points: each request is a unit of work. */
@Controller('plain')
export class PlainController {
  constructor(private readonly service: PlainService) {}

  @Post('repo')
  async repo(@Query('text') text: string): Promise<string> {
    await this.service.add(`${text}_1`);
    await Promise.all([2, 3, 4, 5].map((n) => this.service.add(`${text}_${n}`)));
    return 'ok';
  }

  @Post('repo-fail')
  async repoFail(@Query('text') text: string): Promise<string> {
    await Promise.all([1, 2].map((n) => this.service.add(`${text}_${n}`)));
    throw new Error('after writing');
  }

  @Post('own')
  async own(@Query('text') text: string): Promise<string> {
    await this.service.add(`${text}_outer`);
    await this.service.ownTransaction(`${text}_own`);
    await this.service.notSupported(`${text}_autocommit`);
    throw new Error('after the blocks');
  }

  @Post('add')
  async add(@Query('text') text: string): Promise<string> {
    await this.service.add(`${text}_repo`);
    await this.service.addThroughManager(`${text}_manager`);
    await this.service.addThroughQuery(`${text}_query`);
    return 'ok';
  }

  @Post('fail')
  async fail(@Query('text') text: string): Promise<string> {
    await this.service.add(`${text}_repo`);
    await this.service.addThroughManager(`${text}_manager`);
    throw new Error('after writing');
  }

  @Post('half')
  async half(@Query('text') text: string): Promise<string> {
    await this.service.halfDone(text).catch(() => undefined);
    await this.service.add(`${text}_after`);
    return 'ok';
  }

  @Get('nothing')
  nothing(): string {
    return 'ok';
  }
}

/** Rows the subscriber inserts through the plain manager, after each insert of a `*_audited` row. */
@EventSubscriber()
export class PlainAuditSubscriber implements EntitySubscriberInterface<Example> {
  listenTo() {
    return Example;
  }

  async afterInsert(event: InsertEvent<Example>): Promise<void> {
    if (!event.entity.text?.endsWith('_audited')) return;
    // Plain: the DataSource's own manager, not event.manager.
    await event.connection.manager.insert(Example, { text: `${event.entity.text}_audit` });
  }
}

/** Collects the plain-TypeORM warnings. */
export class PlainWarnings implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    if (String(message).includes('Plain TypeORM code')) this.lines.push(String(message));
  }
}

const SOURCE = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');

/** `plain-app.ts:<line>:`, the line ending with `// @site <name>`. */
export function site(name: string): string {
  const line = SOURCE.findIndex((text) => text.endsWith(`// @site ${name}`));
  if (line < 0) throw new Error(`no line ends with // @site ${name}`);
  return `plain-app.ts:${line + 1}:`;
}

/** A started app with the plain service, the context options given, and its warnings. */
export interface PlainApp extends TestApp {
  service: PlainService;
  context: SessionContext;
  factory: SessionFactory;
}

/**
 * Starts the app: the context module with `options`, and the service's repositories from
 * `TypeOrmModule.forFeature([Example])` (`'plain'`) or `TypeOrmContextModule.forFeature()`.
 */
export async function startPlainApp(
  engine: Engine,
  options: TypeOrmContextModuleOptions,
  logger: LoggerService | false = false,
  feature: 'plain' | 'context' = 'plain',
): Promise<PlainApp> {
  @Module({
    imports: [
      feature === 'plain'
        ? TypeOrmModule.forFeature([Example])
        : TypeOrmContextModule.forFeature([Example]),
    ],
    controllers: [PlainController],
    providers: [PlainService],
  })
  class PlainModule {}

  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({ ...typeormOptions(engine), subscribers: [PlainAuditSubscriber] }),
      TypeOrmContextModule.forRoot(options),
      PlainModule,
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return {
    ...wrap(app, engine, dataSource),
    service: app.get(PlainService),
    context: app.get(SessionContext),
    factory: app.get(SessionFactory),
  };
}

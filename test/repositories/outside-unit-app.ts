import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Controller,
  Injectable,
  type LoggerService,
  Module,
  type OnApplicationBootstrap,
  Post,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import {
  InjectSession,
  Propagation,
  SessionContext,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { typeormOptions, wrap, type TestApp } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

// The app of outside-unit-*.e2e-spec.ts: a service that uses a forFeature() repository and an
// @InjectSession() manager inside and outside units of work. The lines that call them are marked
// `// @site <name>`, so the specs can check that a warning names the right line.

/** A value of the `outsideUnit` option. */
export type Mode = NonNullable<TypeOrmContextModuleOptions['outsideUnit']>;

const SOURCE = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');

/** `outside-unit-app.ts:<line>:`: the line of this file marked `// @site <name>`. */
export function site(name: string): string {
  const marker = `// @site ${name}`;
  const line = SOURCE.findIndex((text) => text.endsWith(marker));
  if (line < 0) throw new Error(`no line ends with ${marker}`);
  return `outside-unit-app.ts:${line + 1}:`;
}

/** Keeps the library's warnings about work outside any unit of work. */
export class Warnings implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    if (String(message).includes('outside any unit of work')) this.lines.push(String(message));
  }
}

/** What a promise came to: its value, or its error's class name. */
async function outcome(work: Promise<unknown>): Promise<string> {
  try {
    await work;
    return 'done';
  } catch (error) {
    return (error as Error).name;
  }
}

/** The methods of a custom repository made with `.extend()`. */
const customMethods = {
  addText(this: Repository<Example>, text: string) {
    return this.save(this.create({ text })); // @site custom
  },
};

/** Code that uses the context-aware repository and manager the way services do. */
@Injectable()
export class Writer implements OnApplicationBootstrap {
  /** What the two statements of `onApplicationBootstrap()` came to. */
  boot: string[] = [];
  /** The work a request left to a timer. */
  late?: Promise<unknown>;

  constructor(
    @InjectRepository(Example) readonly examples: Repository<Example>,
    @InjectSession() readonly session: EntityManager,
    readonly context: SessionContext,
  ) {
    this.custom = examples.extend(customMethods);
  }

  /** A custom repository made from the context-aware one. */
  readonly custom: Repository<Example> & typeof customMethods;

  async onApplicationBootstrap(): Promise<void> {
    this.boot = [
      await outcome(this.examples.insert({ text: 'boot_repository' })), // @site boot_repository
      await outcome(this.session.insert(Example, { text: 'boot_session' })), // @site boot_session
    ];
  }

  viaRepository(text: string) {
    return this.examples.save({ text }); // @site viaRepository
  }

  viaSession(text: string) {
    return this.session.insert(Example, { text }); // @site viaSession
  }

  /** Two statements: the second fails, which shows whether the first was committed on its own. */
  async insertThenFail(text: string): Promise<void> {
    await this.examples.insert({ text });
    await this.session.query('SELECT * FROM no_such_table');
  }

  @Transactional()
  async transactional(text: string): Promise<void> {
    await this.viaRepository(text);
    await this.viaSession(`${text}_session`);
  }

  @Transactional({ propagation: Propagation.NOT_SUPPORTED })
  async notSupported(text: string): Promise<void> {
    await this.viaRepository(text);
    await this.viaSession(`${text}_session`);
  }

  @Transactional({ propagation: Propagation.SUPPORTS })
  async supports(text: string): Promise<void> {
    await this.viaRepository(text);
  }

  /** Reads that run no SQL. */
  reads(): unknown[] {
    return [
      this.examples.metadata.tableName,
      this.examples.target,
      this.examples.manager.connection.options.type,
      this.session.connection.options.type,
      this.examples.createQueryBuilder('e').where('e.id = 1').getQuery(),
      this.examples.create({ text: 'never saved' }),
      this.session.getRepository(Example).metadata.name,
      this.session.hasId(Example, { id: 1 } as Example),
    ];
  }

  /** An explicit transaction of the manager: atomic, not silent autocommit. */
  ownTransaction(text: string) {
    return this.examples.manager.transaction(async (manager) => {
      await manager.insert(Example, { text });
      await manager.insert(Example, { text: `${text}_2` });
    });
  }

  sessionTransaction(text: string) {
    return this.session.transaction((manager) => manager.insert(Example, { text }));
  }
}

@Controller()
class WriterController {
  constructor(private readonly writer: Writer) {}

  @Post('request')
  async request(): Promise<string> {
    await this.writer.viaRepository('request');
    await this.writer.viaSession('request_session');
    return 'ok';
  }

  @Post('late')
  late(): string {
    const late = new Promise((resolve) => setTimeout(resolve, 20)).then(() =>
      this.writer.viaRepository('late'),
    );
    // Handled now: on a loaded machine it may reject before the test awaits it.
    late.catch(() => undefined);
    this.writer.late = late;
    return 'ok';
  }

  @Post('callback')
  callback(): string {
    this.writer.context.afterCommit(() => this.writer.viaRepository('after_commit'));
    return 'ok';
  }
}

@Module({
  imports: [TypeOrmContextModule.forFeature([Example])],
  controllers: [WriterController],
  providers: [Writer],
  exports: [Writer],
})
class WriterModule {}

/** A script: a plain async function that no unit of work wraps. */
export async function script(writer: Writer, text: string): Promise<void> {
  await writer.examples.save({ text }); // @site script
}

/** The same call site, used `times` times. */
export async function repeated(writer: Writer, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await writer.examples.insert({ text: `repeated_${i}` }); // @site repeated
}

/** A query builder built here, outside any unit. */
export function builtOutside(writer: Writer, text: string) {
  return writer.examples.createQueryBuilder().insert().values({ text }); // @site builder
}

/** Builds and starts the app with `outsideUnit: mode` (the default if undefined), logging to `logger`. */
export async function createApp(engine: Engine, mode: Mode | undefined, logger: LoggerService) {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(typeormOptions(engine)),
      TypeOrmContextModule.forRoot(mode === undefined ? {} : { outsideUnit: mode }),
      WriterModule,
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return app;
}

/** A started app, after its `onApplicationBootstrap()` wrote (or tried to) on an emptied table. */
export interface Started {
  t: TestApp;
  writer: Writer;
  /** The rows `onApplicationBootstrap()` left. */
  booted: string[];
}

/** Empties the table, then starts the app (see `createApp()`). */
export async function start(
  engine: Engine,
  mode: Mode | undefined,
  warnings: Warnings,
): Promise<Started> {
  const plain = new DataSource({ ...typeormOptions(engine, 1) });
  await plain.initialize();
  await plain.query('DELETE FROM example');
  await plain.destroy();
  warnings.lines.length = 0;
  const app = await createApp(engine, mode, warnings);
  const t = wrap(app, engine, app.get(DataSource));
  return { t, writer: app.get(Writer), booted: await t.texts() };
}

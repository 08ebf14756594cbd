import {
  type CanActivate,
  Controller,
  ForbiddenException,
  Get,
  Injectable,
  type LoggerService,
  UseGuards,
} from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  SessionContext,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** What the apps' code saw, for the assertions: unit ids read by `unitId()`, by label. */
export const seen = new Map<string, number>();

/** A guard that writes, registers a failing afterRollback callback, then refuses the request. */
@Injectable()
export class WritingGuard implements CanActivate {
  constructor(private readonly context: SessionContext) {}

  async canActivate(): Promise<boolean> {
    await this.context.session().insert(Example, { text: 'guard' });
    seen.set('guard', this.context.unitId());
    this.context.afterRollback(() => {
      seen.set('guard callback', this.context.unitId());
      throw new Error('afterRollback of the guard fails');
    });
    throw new ForbiddenException('refused by the guard');
  }
}

@Injectable()
export class TagService {
  constructor(private readonly context: SessionContext) {}

  /** A transaction of its own (outside any unit: a unit of its own) whose afterCommit fails. */
  @Transactional()
  async ownTransaction(label: string): Promise<number> {
    await this.context.session().insert(Example, { text: label });
    const id = this.context.unitId();
    this.context.afterCommit(() => {
      seen.set(`${label} callback`, this.context.unitId());
      throw new Error(`afterCommit of ${label} fails`);
    });
    return id;
  }
}

@Controller()
export class TagController {
  constructor(
    private readonly context: SessionContext,
    private readonly service: TagService,
  ) {}

  @Get('guarded')
  @UseGuards(WritingGuard)
  guarded(): string {
    return 'never';
  }

  @Get('callback')
  async callback(): Promise<{ unit: number }> {
    await this.context.session().insert(Example, { text: 'handler' });
    const unit = this.context.unitId();
    this.context.afterCommit(() => {
      throw new Error(`afterCommit of unit ${unit} fails`);
    });
    return { unit };
  }
}

/** Starts an app of `TagController` logging to `logger`. */
export async function startTagApp(
  engine: Engine,
  logger: LoggerService,
  context: TypeOrmContextModuleOptions = {},
  fastify = false,
): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot(context)],
    controllers: [TagController],
    providers: [TagService, WritingGuard],
  }).compile();
  const app = fastify
    ? moduleRef.createNestApplication(new FastifyAdapter(), { logger })
    : moduleRef.createNestApplication({ logger });
  if (fastify) await app.listen(0, '127.0.0.1');
  else await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return wrap(app, engine, dataSource);
}

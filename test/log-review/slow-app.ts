import { Controller, Get, Injectable, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  Propagation,
  SessionContext,
  Transactional,
  TypeOrmContextModule,
  type TypeOrmContextModuleOptions,
} from '../../src/index.js';
import { type TestApp, typeormOptions, wrap } from '../support/create-app.js';
import type { Engine } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

/** Attempts of `retried()` so far. */
export const attempts = { count: 0 };

@Injectable()
export class SlowService {
  constructor(readonly context: SessionContext) {}

  /** Fails its first attempt with a serialization failure, commits its second. */
  @Transactional({ retry: 2 })
  async retried(): Promise<number> {
    attempts.count++;
    await this.context.session().insert(Example, { text: `attempt ${attempts.count}` });
    if (attempts.count === 1) {
      throw Object.assign(new Error('could not serialize access'), { code: '40001' });
    }
    return this.context.unitId();
  }

  /** A transaction of its own. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async own(): Promise<void> {
    await this.context.session().insert(Example, { text: 'own' });
  }

  /** A NESTED block inside the unit's transaction: a savepoint, no line of its own. */
  @Transactional({ propagation: Propagation.NESTED })
  async nested(): Promise<void> {
    await this.context.session().insert(Example, { text: 'nested' });
  }
}

@Controller()
export class SlowController {
  constructor(private readonly service: SlowService) {}

  @Get('mixed')
  async mixed(): Promise<{ unit: number }> {
    await this.service.context.session().insert(Example, { text: 'unit' });
    await this.service.own();
    await this.service.nested();
    return { unit: this.service.context.unitId() };
  }

  @Get('fails')
  async fails(): Promise<never> {
    await this.service.context.session().insert(Example, { text: 'fails' });
    throw new Error('the handler fails');
  }
}

/** Starts an app of `SlowController` logging to `logger`. */
export async function startSlowApp(
  engine: Engine,
  logger: LoggerService,
  context: TypeOrmContextModuleOptions,
): Promise<TestApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [TypeOrmModule.forRoot(typeormOptions(engine)), TypeOrmContextModule.forRoot(context)],
    controllers: [SlowController],
    providers: [SlowService],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  const dataSource = app.get(DataSource);
  await dataSource.query('DELETE FROM example');
  return wrap(app, engine, dataSource);
}

import { Controller, Get, Injectable, Module, Post } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, type EntityManager, type Repository } from 'typeorm';
import {
  InjectSession,
  Propagation,
  SessionContext,
  SessionFactory,
  Transactional,
  TypeOrmContextModule,
} from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** What callbacks saw, for the kit's tests. */
export const seen: { afterCommitRows: number[]; callbackErrors: string[]; slowWrote: number } = {
  afterCommitRows: [],
  callbackErrors: [],
  /** How many `/kit/slow` requests wrote their row (a test waits for its request to be in). */
  slowWrote: 0,
};

@Injectable()
export class KitService {
  constructor(
    private readonly context: SessionContext,
    @InjectRepository(Example) private readonly examples: Repository<Example>,
    @InjectSession() private readonly session: EntityManager,
  ) {}

  /** Outside any context it opens one of its own. */
  @Transactional()
  async byDecorator(text: string) {
    await this.context.session().insert(Example, { text });
  }

  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async independent(text: string) {
    await this.context.session().insert(Example, { text });
  }

  /** A REQUIRES_NEW block whose afterCommit callback writes through the forFeature() repository. */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async independentWithCallback(text: string) {
    await this.context.session().insert(Example, { text });
    this.context.afterCommit(async () => {
      try {
        await this.examples.insert({ text: `${text}, after commit` });
      } catch (error) {
        seen.callbackErrors.push((error as Error).name);
      }
    });
  }

  byRepository(text: string) {
    return this.examples.insert({ text });
  }

  byInjectedSession(text: string) {
    return this.session.insert(Example, { text });
  }
}

@Controller('kit')
export class KitController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
    private readonly service: KitService,
    private readonly dataSource: DataSource,
  ) {}

  /** Plain TypeORM in a handler: the DataSource's own query while the unit holds a connection. */
  @Post('plain-query')
  async plainQuery() {
    await this.context.session().insert(Example, { text: 'unit' });
    await this.dataSource.query("INSERT INTO example (text) VALUES ('plain')");
    return 'ok';
  }

  /** A REQUIRES_NEW block whose afterCommit callback uses a forFeature() repository. */
  @Post('requires-new-callback')
  async requiresNewCallback() {
    await this.context.session().insert(Example, { text: 'unit' });
    await this.service.independentWithCallback('requires-new');
    return 'ok';
  }

  @Post('insert')
  async insert() {
    await this.service.byRepository('request');
    await this.service.byInjectedSession('injected');
    await this.service.independent('requires-new');
    return 'ok';
  }

  @Post('fail')
  async fail() {
    await this.context.session().insert(Example, { text: 'failed request' });
    throw new Error('the handler fails');
  }

  /** The seed example's handler: five independent sessions at once. */
  @Post('parallel')
  async parallel() {
    const branches = [1, 2, 3, 4, 5].map((n) =>
      this.factory.atomic(async (manager) => {
        await manager.insert(Example, { text: `parallel ${n}` });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }),
    );
    await Promise.all(branches);
    return 'ok';
  }

  @Post('nested')
  async nested() {
    await this.context.session().insert(Example, { text: 'outer' });
    await this.context
      .atomic(
        async (manager) => {
          await manager.insert(Example, { text: 'nested, rolled back' });
          throw new Error('inner fails');
        },
        { propagation: Propagation.NESTED },
      )
      .catch(() => undefined);
    return 'ok';
  }

  @Post('after-commit')
  async afterCommit() {
    const session = this.context.session();
    await session.insert(Example, { text: 'with callback' });
    this.context.afterCommit(async () => {
      const rows: Array<{ n: string }> = await session.connection.query(
        'SELECT count(*) AS n FROM example',
      );
      seen.afterCommitRows.push(Number(rows[0]!.n));
    });
    return 'ok';
  }

  @Get('slow')
  async slow() {
    await this.context.session().insert(Example, { text: 'slow' });
    seen.slowWrote++;
    await new Promise((resolve) => setTimeout(resolve, 300));
    return 'ok';
  }

  /** Touches the database only after 150 ms. */
  @Post('late')
  async late() {
    await new Promise((resolve) => setTimeout(resolve, 150));
    await this.context.session().insert(Example, { text: 'late' });
    return 'ok';
  }

  /** Inserts, waits 300 ms holding its savepoint, inserts again. */
  @Post('slow-twice')
  async slowTwice() {
    await this.context.session().insert(Example, { text: 'first' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await this.context.session().insert(Example, { text: 'second' });
    return 'ok';
  }

  @MessagePattern('insert')
  async message(text: string) {
    await this.context.session().insert(Example, { text });
    return 'stored';
  }
}

@Module({
  imports: [TypeOrmContextModule.forFeature([Example])],
  controllers: [KitController],
  providers: [KitService],
})
export class KitModule {}

import { Injectable } from '@nestjs/common';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { Example } from '../support/example.entity.js';

/** The original library's example routes, written with this library's API. */
@Injectable()
export class ScenariosService {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  insert(text: string): Promise<unknown> {
    return this.context.session().getRepository(Example).save({ text });
  }

  async simpleUsage(): Promise<void> {
    await this.insert('simple_usage');
  }

  async atomicBaseExample(): Promise<void> {
    await this.context.atomic((manager) => manager.insert(Example, { text: 'atomic' }));
    await this.insert('after_atomic');
  }

  async atomicAndPreviousTransaction(): Promise<void> {
    await this.insert('committed_early');
    await this.context.commit();
    await this.insert('rolled_back');
    await this.context.rollback();
    await this.context.atomic((m) => m.insert(Example, { text: 'joined' }));
    await this.context.atomic((m) => m.insert(Example, { text: 'own_transaction' }), {
      propagation: Propagation.REQUIRES_NEW,
    });
    await this.context
      .atomic(
        async (m) => {
          await m.insert(Example, { text: 'savepoint_rolled_back' });
          throw new Error('inner failure');
        },
        { propagation: Propagation.NESTED },
      )
      .catch(() => undefined);
    await this.context.atomic((m) => m.insert(Example, { text: 'savepoint_kept' }), {
      propagation: Propagation.NESTED,
    });
    await this.context.commit();
    await this.insert('lost_with_the_request');
    await this.context.atomic(
      () => {
        throw new Error('the error that reaches the client');
      },
      { propagation: Propagation.MANDATORY },
    );
  }

  async earlyCommit(): Promise<void> {
    await this.insert('early_commit_1');
    await this.context.session().queryRunner!.commitTransaction();
    await this.insert('early_commit_2');
    await this.context.commit();
    await this.context.close();
    await this.insert('early_commit_3');
    await this.insert('early_commit_4');
  }

  async earlyRollback(): Promise<void> {
    await this.insert('early_rollback_1');
    await this.context.rollback();
    await this.insert('early_rollback_2');
    await this.context.session().queryRunner!.rollbackTransaction();
  }

  async earlyConnectionClose(longWork: () => Promise<void>): Promise<void> {
    await this.context.atomic((m) => m.insert(Example, { text: 'before_close' }));
    await this.context.commit();
    await this.context.close();
    await longWork();
    await this.insert('after_close');
  }

  async concurrentQueries(): Promise<PromiseSettledResult<unknown>[]> {
    return Promise.allSettled([
      this.insert('context_session'),
      this.factory.runInNewContext(() => this.insert('new_context')),
      this.factory.runInNewContext(async () => {
        await this.insert('new_context_manual');
        await this.context.commit();
        await this.context.close();
      }),
      this.factory.atomic((m) => m.insert(Example, { text: 'factory_atomic' })),
      (async () => {
        await using session = this.factory.open();
        await session.manager.insert(Example, { text: 'factory_open' });
        await session.commit();
      })(),
      this.factory.runInNewContext(async () => {
        await this.insert('new_context_failing');
        throw new Error('rolled back branch');
      }),
    ]);
  }
}

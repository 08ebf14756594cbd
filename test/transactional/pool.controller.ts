import { Controller, Get, Query } from '@nestjs/common';
import { Propagation, SessionContext, SessionFactory } from '../../src/index.js';
import { Example } from '../support/example.entity.js';
import type { Barrier } from './barrier.js';

/** Where the pool scenario's requests meet: after taking a connection, and after failing. */
export const rendezvous: { holding?: Barrier; failed?: Barrier } = {};

/** What a request that tried to open an independent session reports. */
export interface Outcome {
  ok: boolean;
  name?: string;
  message?: string;
  elapsed: number;
}

/** Requests that hold their session's connection and then ask the pool for another one. */
@Controller('pool')
export class PoolController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Get('independent')
  async independent(@Query('via') via: string): Promise<Outcome> {
    await this.context.session().insert(Example, { text: 'outer' });
    await rendezvous.holding?.arrive();
    const started = Date.now();
    let outcome: Outcome;
    try {
      await this.open(via);
      outcome = { ok: true, elapsed: Date.now() - started };
    } catch (error) {
      const { name, message } = error as Error;
      outcome = { ok: false, name, message, elapsed: Date.now() - started };
    }
    await rendezvous.failed?.arrive();
    return outcome;
  }

  @Get('ok')
  async ok() {
    await this.context.session().insert(Example, { text: 'ok' });
    return 'ok';
  }

  private async open(via: string): Promise<void> {
    const insert = { text: 'inner' };
    switch (via) {
      case 'requires-new':
        await this.context.atomic((m) => m.insert(Example, insert), {
          propagation: Propagation.REQUIRES_NEW,
        });
        return;
      case 'requires-new-timeout':
        await this.context.atomic((m) => m.insert(Example, insert), {
          propagation: Propagation.REQUIRES_NEW,
          timeout: 200,
        });
        return;
      case 'factory-atomic':
        await this.factory.atomic((m) => m.insert(Example, insert));
        return;
      case 'open': {
        await using session = this.factory.open();
        await session.manager.insert(Example, insert);
        await session.commit();
        return;
      }
      case 'run-in-new-context':
        await this.factory.runInNewContext(() => this.context.session().insert(Example, insert));
        return;
    }
    throw new Error(`unknown via '${via}'`);
  }
}

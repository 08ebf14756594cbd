import { Controller, Get } from '@nestjs/common';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { type Engine, backendId } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

export const engineRef: { engine?: Engine } = {};

/** One branch's evidence: which backend ran it and how many branches held a connection with it. */
interface Branch {
  backend: string;
  together: number;
}

/**
 * Five branches meet here while each holds its connection: the barrier opens only when all five
 * have arrived, so a run that serialized them (or queued one behind another) fails at the deadline
 * instead of passing on a lucky clock.
 */
class Barrier {
  private arrived = 0;
  private open!: () => void;
  private readonly opened = new Promise<void>((resolve) => (this.open = resolve));

  constructor(private readonly parties: number) {}

  async arrive(): Promise<number> {
    this.arrived += 1;
    if (this.arrived === this.parties) this.open();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`only ${this.arrived} of ${this.parties} branches ran at once`)),
        10_000,
      );
    });
    try {
      await Promise.race([this.opened, deadline]);
    } finally {
      clearTimeout(timer);
    }
    return this.arrived;
  }
}

/** The seed page's handler_multiple_sessions: five branches, five connections, at once. */
@Controller()
export class ParallelController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  private barrier?: Barrier;

  @Get('multiple-sessions')
  async multipleSessions() {
    this.barrier = new Barrier(5);
    const branches = await Promise.all([
      this.insert('context_session'),
      this.factory.runInNewContext(() => this.insert('new_context')),
      this.factory.runInNewContext(async () => {
        const branch = await this.insert('new_context_manual');
        await this.context.commit();
        await this.context.close();
        return branch;
      }),
      this.factory.atomic((manager) => this.work(manager, 'non_ctx_atomic')),
      (async () => {
        await using session = this.factory.open();
        const branch = await this.work(session.manager, 'non_ctx_manual');
        await session.commit();
        return branch;
      })(),
    ]);
    return branches;
  }

  private insert(text: string): Promise<Branch> {
    return this.work(this.context.session(), text);
  }

  private async work(manager: import('typeorm').EntityManager, text: string): Promise<Branch> {
    const engine = engineRef.engine!;
    const backend = await backendId(engine, manager);
    const together = await this.barrier!.arrive();
    await manager.query(engine.sleepSql(0.05));
    await manager.insert(Example, { text });
    return { backend, together };
  }
}

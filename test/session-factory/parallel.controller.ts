import { Controller, Get } from '@nestjs/common';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { type Engine, backendId } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

export const engineRef: { engine?: Engine } = {};

/** One branch's evidence: which backend ran it and when its sleep started and ended. */
interface Branch {
  backend: string;
  start: number;
  end: number;
}

/** The seed page's handler_multiple_sessions: five branches, five connections, at once. */
@Controller()
export class ParallelController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Get('multiple-sessions')
  async multipleSessions() {
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
    const start = Date.now();
    await manager.query(engine.sleepSql(0.3));
    const end = Date.now();
    await manager.insert(Example, { text });
    return { backend, start, end };
  }
}

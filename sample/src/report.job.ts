import { Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { AuditEntry, Note } from './entities.js';
import { SessionContext, Transactional } from 'nestjs-typeorm-context';

/**
 * A cron-like job: no request, so @Transactional() opens a context (and a read-only
 * transaction) for each run and ends it when the method resolves.
 */
@Injectable()
export class ReportJob implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;

  constructor(private readonly sessionContext: SessionContext) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.run(), 60_000);
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  @Transactional({ readOnly: true })
  async run(): Promise<void> {
    const db = this.sessionContext.session();
    const notes = await db.count(Note);
    const audit = await db.count(AuditEntry);
    console.log(`[report job] ${notes} notes, ${audit} audit entries`);
  }
}

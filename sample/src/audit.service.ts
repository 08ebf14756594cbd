import { Injectable } from '@nestjs/common';
import { AuditEntry } from './entities.js';
import { Propagation, SessionContext, Transactional } from 'nestjs-typeorm-context';

@Injectable()
export class AuditService {
  constructor(private readonly sessionContext: SessionContext) {}

  /**
   * REQUIRES_NEW: an independent session and transaction, committed when this method returns,
   * whatever happens to the caller's transaction afterwards.
   */
  @Transactional({ propagation: Propagation.REQUIRES_NEW })
  async record(message: string): Promise<void> {
    // Inside the block, session() is the block's own session.
    await this.sessionContext.session().insert(AuditEntry, { message });
  }

  list(): Promise<AuditEntry[]> {
    return this.sessionContext.session().find(AuditEntry, { order: { id: 'ASC' } });
  }
}

import { Injectable, InternalServerErrorException } from '@nestjs/common';
import { AuditService } from './audit.service.js';
import { Note } from './entities.js';
import { Propagation, SessionContext, Transactional } from 'nestjs-typeorm-context';

@Injectable()
export class NotesService {
  constructor(
    private readonly sessionContext: SessionContext,
    private readonly audit: AuditService,
  ) {}

  /** The request's session: same connection and transaction at any depth, no manager passed around. */
  private get db() {
    return this.sessionContext.session();
  }

  list(): Promise<Note[]> {
    return this.db.find(Note, { order: { id: 'ASC' } });
  }

  async create(text: string): Promise<Note> {
    const note = await this.db.save(Note, { text });
    this.sessionContext.afterCommit(() => console.log(`[afterCommit] note ${note.id} is durable`));
    return note;
  }

  /** Writes, then fails: the interceptor rolls the whole request back. */
  async createThenFail(text: string): Promise<never> {
    await this.db.save(Note, { text });
    throw new InternalServerErrorException(`failed after saving '${text}': rolled back`);
  }

  /** Commits the first write now; the second one belongs to a new transaction that rolls back. */
  async earlyCommit(text: string): Promise<never> {
    await this.db.save(Note, { text: `${text} (committed early)` });
    await this.sessionContext.commit();
    await this.db.save(Note, { text: `${text} (after the commit)` });
    throw new InternalServerErrorException(
      'failed after an early commit: only the first note stays',
    );
  }

  /** REQUIRED (the default) joins the request's transaction; the audit entry has its own. */
  @Transactional()
  async createAudited(text: string, fail: boolean): Promise<Note> {
    await this.audit.record(`create '${text}' attempted`);
    const note = await this.db.save(Note, { text });
    if (fail) {
      throw new InternalServerErrorException(`'${text}' rolled back; its audit entry stays`);
    }
    return note;
  }

  /** Catch-and-continue: each note in a savepoint, so one failing INSERT does not doom the rest. */
  async createMany(texts: string[]) {
    const saved: string[] = [];
    const failed: Array<{ text: string; error: string }> = [];
    for (const text of texts) {
      try {
        await this.createOne(text);
        saved.push(text);
      } catch (error) {
        failed.push({ text, error: (error as Error).message });
      }
    }
    return { saved, failed };
  }

  /** NESTED: a SAVEPOINT inside the current transaction, rolled back alone on error. */
  @Transactional({ propagation: Propagation.NESTED })
  async createOne(text: string): Promise<Note> {
    return this.db.save(Note, { text });
  }
}

import { Body, Controller, Get, Post } from '@nestjs/common';
import { AuditService } from './audit.service.js';
import { NotesService } from './notes.service.js';

interface NoteBody {
  text: string;
  fail?: boolean;
}

/** No transaction code here: AutoCommitInterceptor commits before the response, or rolls back. */
@Controller()
export class NotesController {
  constructor(
    private readonly notes: NotesService,
    private readonly audit: AuditService,
  ) {}

  @Get('notes')
  list() {
    return this.notes.list();
  }

  @Post('notes')
  create(@Body() body: NoteBody) {
    return this.notes.create(body.text);
  }

  @Post('notes/fail')
  createThenFail(@Body() body: NoteBody) {
    return this.notes.createThenFail(body.text);
  }

  @Post('notes/early-commit')
  earlyCommit(@Body() body: NoteBody) {
    return this.notes.earlyCommit(body.text);
  }

  @Post('notes/audited')
  createAudited(@Body() body: NoteBody) {
    return this.notes.createAudited(body.text, body.fail === true);
  }

  @Post('notes/batch')
  createMany(@Body() body: { texts: string[] }) {
    return this.notes.createMany(body.texts);
  }

  @Get('audit')
  auditLog() {
    return this.audit.list();
  }
}

import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditService } from './audit.service.js';
import { databaseOptions, onSqlite } from './database-options.js';
import { AuditEntry, Note, User } from './entities.js';
import { MeController } from './me.controller.js';
import { NotesController } from './notes.controller.js';
import { NotesService } from './notes.service.js';
import { ParallelController } from './parallel.controller.js';
import { ReportJob } from './report.job.js';
import { TypeOrmContextModule } from 'nestjs-typeorm-context';

@Module({})
export class AppModule {
  /** `database`: a PostgreSQL URL, or `sqlite::memory:` / `sqlite:<file>` (see database-options.ts). */
  static forRoot(database: string): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot({
          ...databaseOptions(database),
          entities: [Note, AuditEntry, User],
          synchronize: true, // fine for a sample; use migrations in an app
        }),
        // The auto-commit interceptor and the context middleware (before guards) are on by default.
        TypeOrmContextModule.forRoot(
          onSqlite(database)
            ? {}
            : {
                // Runs after each BEGIN, before the session's first query.
                onSessionStart: (session) => session.query(`SET LOCAL statement_timeout = '5s'`),
              },
        ),
        // Instead of TypeOrmModule.forFeature(): @InjectRepository(User) follows the context.
        TypeOrmContextModule.forFeature([User]),
      ],
      controllers: [NotesController, ParallelController, MeController],
      providers: [NotesService, AuditService, ReportJob],
    };
  }
}

/**
 * Round two: tokens of requests whose unit no interceptor claimed (a guard that committed then
 * threw), of apps with `middleware: false`, and of `autoCommit: false` apps that apply the
 * interceptor per controller. Every claim is checked on the servers (rows on the primary,
 * pg_is_in_recovery() of the read).
 */
import {
  type CanActivate,
  Controller,
  ForbiddenException,
  Get,
  Injectable,
  Param,
  Post,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { AutoCommitInterceptor, SessionContext, SessionFactory } from '../../src/index.js';
import { pauseReplay, resumeReplay } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { createReviewApp, HEADER, onPrimary, type ReviewApp, seen } from './review-app.js';

/** A guard that writes, commits through sessionContext.commit(), then refuses the request. */
@Injectable()
class CommitThenRefuse implements CanActivate {
  constructor(private readonly context: SessionContext) {}
  async canActivate(): Promise<boolean> {
    await this.context.session().insert(ReplicaItem, { text: 'guard-wrote' });
    await this.context.commit();
    throw new ForbiddenException('refused after the guard committed');
  }
}

/** A guard that reads in a read-only transaction of its own (a replica unless the token forbids). */
@Injectable()
class ReadingGuard implements CanActivate {
  static seen: Array<{ replica: boolean; seen: number }> = [];
  constructor(private readonly factory: SessionFactory) {}
  async canActivate(): Promise<boolean> {
    ReadingGuard.seen.push(
      await this.factory.atomic((manager) => seen(manager, 'guard-read'), { readOnly: true }),
    );
    return true;
  }
}

@Controller('g')
class GuardController {
  constructor(private readonly context: SessionContext) {}

  @Post('refused')
  @UseGuards(CommitThenRefuse)
  refused(): object {
    return {};
  }

  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  @Get('guarded')
  @UseGuards(ReadingGuard)
  guarded(): object {
    return {};
  }
}

/** The interceptor per controller (autoCommit: false). */
@Controller('with')
@UseInterceptors(AutoCommitInterceptor)
class WithInterceptor {
  constructor(private readonly context: SessionContext) {}
  @Post(':text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }
}

/** No interceptor (autoCommit: false): the handler commits itself, as the README says to. */
@Controller('without')
class WithoutInterceptor {
  constructor(private readonly context: SessionContext) {}
  @Post(':text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    await this.context.commit();
    return {};
  }
}

const consistency = { header: HEADER };

describe('Replica review 2: units no interceptor claimed', () => {
  let t: ReviewApp | undefined;
  afterEach(async () => {
    await resumeReplay();
    await t?.close();
    t = undefined;
  });

  it('a guard that committed through sessionContext.commit() and then threw sends the token of its commit', async () => {
    t = await createReviewApp({
      context: { consistency },
      controllers: [GuardController],
      providers: [CommitThenRefuse, ReadingGuard],
    });
    const response = await t.http().post('/g/refused');
    expect(response.status).toBe(403);
    // The guard's commit stands on the primary...
    expect(await onPrimary('guard-wrote')).toBe(1);
    // ...so the response must carry the token that names it (the docs: a commit of the request
    // moved it, "a sessionContext.commit() before a failure" included).
    expect(response.headers[HEADER]).toMatch(/^default=[0-9A-F]+\/[0-9A-F]+$/);
    await t.expectClean();
  });

  it("a guard's read-only transaction honours the request's token (the middleware read it)", async () => {
    t = await createReviewApp({
      context: { consistency },
      controllers: [GuardController],
      providers: [CommitThenRefuse, ReadingGuard],
    });
    await pauseReplay();
    const write = await t.http().post('/g/write/guard-read').expect(201);
    const token = write.headers[HEADER] as string;
    expect(token).toBeDefined();
    ReadingGuard.seen = [];
    await t.http().get('/g/guarded').set(HEADER, token).expect(200);
    expect(ReadingGuard.seen).toEqual([expect.objectContaining({ replica: false, seen: 1 })]);
    ReadingGuard.seen = [];
    await t.http().get('/g/guarded').expect(200); // without the token: the paused replica
    expect(ReadingGuard.seen).toEqual([expect.objectContaining({ replica: true, seen: 0 })]);
    await t.expectClean();
  });

  it('middleware: false: the interceptor reads and sends tokens itself', async () => {
    t = await createReviewApp({
      context: { consistency, middleware: false },
      controllers: [GuardController],
      providers: [CommitThenRefuse, ReadingGuard],
    });
    const write = await t.http().post('/g/write/no-mw').expect(201);
    expect(write.headers[HEADER]).toMatch(/^default=/);
    expect(await onPrimary('no-mw')).toBe(1);
    await t.expectClean();
  });

  it('autoCommit: false with @UseInterceptors(AutoCommitInterceptor) on the controller sends the token', async () => {
    t = await createReviewApp({
      context: { consistency, autoCommit: false },
      controllers: [WithInterceptor],
    });
    const response = await t.http().post('/with/per-controller').expect(201);
    expect(await onPrimary('per-controller')).toBe(1);
    expect(response.headers[HEADER]).toMatch(/^default=/);
    await t.expectClean();
  });

  it('autoCommit: false, a route without the interceptor that commits itself sends the token of its commit', async () => {
    t = await createReviewApp({
      context: { consistency, autoCommit: false },
      controllers: [WithoutInterceptor],
    });
    const response = await t.http().post('/without/self-committed').expect(201);
    expect(await onPrimary('self-committed')).toBe(1);
    expect(response.headers[HEADER]).toMatch(/^default=/);
    await t.expectClean();
  });
});

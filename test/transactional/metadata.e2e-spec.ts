import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  Injectable,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import { SessionContext, Transactional } from '../../src/index.js';
import { createTestApp, type TestApp } from '../support/create-app.js';
import { enginesAndSqlite } from '../support/engines.js';
import { Example } from '../support/example.entity.js';

const Roles = (...roles: string[]) => SetMetadata('roles', roles);

/** A hand-written decorator that sets metadata on the method itself, as many libraries do. */
function CustomKey(value: number): MethodDecorator {
  return (_target, _key, descriptor) => {
    Reflect.defineMetadata('custom:key', value, descriptor.value as object);
  };
}

/** Lets a request in when its `x-role` header is one of the handler's 'roles'. */
@Injectable()
class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const roles = this.reflector.get<string[] | undefined>('roles', context.getHandler());
    if (roles === undefined) return true;
    const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>();
    return roles.includes(String(request.headers['x-role']));
  }
}

@Controller('metadata')
@UseGuards(RolesGuard)
class MetadataController {
  constructor(private readonly context: SessionContext) {}

  @Transactional()
  @Get('transactional-first')
  @Roles('admin')
  @CustomKey(42)
  async transactionalFirst() {
    await this.context.session().insert(Example, { text: 'transactional-first' });
    return 'routed';
  }

  @Get('transactional-last')
  @Roles('admin')
  @CustomKey(42)
  @Transactional()
  async transactionalLast() {
    await this.context.session().insert(Example, { text: 'transactional-last' });
    return 'routed';
  }
}

const methods = [
  { method: 'transactionalFirst', path: 'transactional-first' },
  { method: 'transactionalLast', path: 'transactional-last' },
] as const;

describe.each(enginesAndSqlite)(
  '@Transactional keeps other decorators metadata ($name)',
  (engine) => {
    let t: TestApp;

    beforeAll(async () => {
      t = await createTestApp(engine, {
        controllers: [MetadataController],
        providers: [RolesGuard],
      });
    });
    beforeEach(() => t.dataSource.query('DELETE FROM example'));
    afterEach(() => t.expectClean());
    afterAll(() => t.close());

    it.each(methods)(
      '$method: roles, custom:key, route path and method name survive',
      ({ method, path }) => {
        const handler = MetadataController.prototype[method];
        expect(handler.name).toBe(method);
        expect(Reflect.getMetadata('roles', handler)).toEqual(['admin']);
        expect(Reflect.getMetadata('custom:key', handler)).toBe(42);
        expect(Reflect.getMetadata(PATH_METADATA, handler)).toBe(path);
      },
    );

    it.each(methods)(
      '$method: the roles guard admits an admin (200, row committed) and refuses others (403, no row)',
      async ({ path }) => {
        await t.http().get(`/metadata/${path}`).set('x-role', 'user').expect(403);
        await t.http().get(`/metadata/${path}`).expect(403);
        expect(await t.rows()).toBe(0);
        await t.http().get(`/metadata/${path}`).set('x-role', 'admin').expect(200, 'routed');
        expect(await t.texts()).toEqual([path]);
      },
    );
  },
);

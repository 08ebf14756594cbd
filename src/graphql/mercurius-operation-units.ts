import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { SessionRuntime } from '../context/session-runtime.js';
import { reportEndError } from './end-error.js';
import { OperationUnit, type OperationEnd, type OperationResult } from './operation-unit.js';

/** The context Mercurius gives its hooks: the Fastify reply of an operation served over HTTP. */
interface MercuriusContext {
  reply?: {
    raw: { writableEnded: boolean; once(event: 'close', listener: () => void): unknown };
    request?: { body?: unknown; query?: unknown };
  };
}

/** The `operationName` the request names (its JSON body's, or the query string's for a GET). */
function operationNameOf(context: MercuriusContext): string | undefined {
  const request = context.reply?.request;
  for (const source of [request?.body, request?.query]) {
    const name = (source as { operationName?: unknown } | null | undefined)?.operationName;
    if (typeof name === 'string' && name !== '') return name;
  }
  return undefined;
}

/** The parts of a parsed GraphQL document this reads (no import of graphql). */
interface GraphqlDocument {
  definitions?: Array<{ kind: string; operation?: string; name?: { value: string } }>;
}

/** The parts of Mercurius (`fastify.graphql`) this reads (no import of mercurius). */
interface Mercurius {
  addHook(
    name: 'preExecution',
    hook: (schema: unknown, document: unknown, context: MercuriusContext) => Promise<void>,
  ): void;
  addHook(
    name: 'onResolution',
    hook: (execution: OperationResult, context: MercuriusContext) => Promise<void>,
  ): void;
}

/**
 * Gives each operation Mercurius serves over HTTP the request's unit of work: its hooks, added to
 * the Fastify instance's `graphql` once the app has started (`@nestjs/mercurius` registers
 * Mercurius while the app's modules initialize), start the operation before it executes and end
 * it in `onResolution`, which Mercurius awaits before it sends the response. A failed COMMIT
 * becomes an error of the response, with its data removed.
 */
@Injectable()
export class MercuriusOperationUnits implements OnApplicationBootstrap {
  /** The end of each operation under way, by its Mercurius context. */
  private readonly running = new WeakMap<object, OperationEnd>();

  constructor(
    private readonly runtime: SessionRuntime,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {}

  /** Adds the hooks if the app serves Mercurius. */
  onApplicationBootstrap(): void {
    if (this.runtime.options.graphql === false) return;
    const adapter = this.adapterHost.httpAdapter as HttpAdapterHost['httpAdapter'] | undefined;
    const mercurius = (adapter?.getInstance?.() as { graphql?: Partial<Mercurius> } | undefined)
      ?.graphql;
    if (typeof mercurius?.addHook !== 'function') return;
    mercurius.addHook('preExecution', async (_schema, document, context) => {
      this.start(context);
      const operations = (document as GraphqlDocument | undefined)?.definitions?.filter(
        (definition) => definition.kind === 'OperationDefinition',
      );
      // The one `operationName` picks (the request's), else the document's only one.
      const picked = operationNameOf(context);
      const operation =
        picked === undefined
          ? operations?.[0]
          : operations?.find((definition) => definition.name?.value === picked);
      OperationUnit.nameOperation(operation?.operation, operation?.name?.value);
    });
    mercurius.addHook('onResolution', async (execution, context) => {
      const failure = await this.running.get(context)?.(execution);
      if (failure !== undefined) reportEndError(execution, failure);
    });
  }

  private start(context: MercuriusContext): void {
    const end = OperationUnit.start(this.runtime);
    if (end === undefined) return;
    this.running.set(context, end);
    // A response sent without onResolution (an execution that threw): nothing may stay open.
    const raw = context.reply?.raw;
    raw?.once('close', () => {
      if (raw.writableEnded) void end(undefined);
    });
  }
}

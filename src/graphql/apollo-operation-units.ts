import { Injectable } from '@nestjs/common';
import { SessionRuntime } from '../context/session-runtime.js';
import { reportEndError } from './end-error.js';
import { OperationUnit, type OperationEnd, type OperationResult } from './operation-unit.js';

/** The metadata key of `@nestjs/apollo`'s `@Plugin()`: its driver hands such providers to Apollo. */
const APOLLO_PLUGIN_METADATA = 'graphql:plugin';

/** The parts of Apollo Server's request context the plugin reads (no import of @apollo/server). */
interface ApolloRequestContext {
  /** The operation, once parsed and validated (`didResolveOperation`). */
  operation?: { operation?: string };
  operationName?: string | null;
  response: {
    body?:
      | { kind: 'single'; singleResult: OperationResult }
      | { kind: 'incremental'; initialResult: OperationResult };
  };
}

/**
 * An Apollo Server plugin, found by `@nestjs/apollo` among the app's providers like any
 * `@Plugin()` class (this module sets the same metadata key without importing that package):
 * each operation served over HTTP starts in the request's unit of work before it executes, and
 * ends in `willSendResponse`, which Apollo awaits before it sends the response. A failed COMMIT
 * becomes an error of the response, with its data removed.
 */
@Injectable()
export class ApolloOperationUnits {
  /** The end of each operation under way, by its request context (for a failure outside the hooks). */
  private readonly running = new WeakMap<object, OperationEnd>();

  constructor(private readonly runtime: SessionRuntime) {}

  /** Starts the operation in the request's unit; no listener where there is no unit to take. */
  requestDidStart(requestContext: object) {
    const end = OperationUnit.start(this.runtime);
    if (end === undefined) return undefined;
    this.running.set(requestContext, end);
    return {
      didResolveOperation: async ({ operation, operationName }: ApolloRequestContext) =>
        OperationUnit.nameOperation(operation?.operation, operationName),
      willSendResponse: async ({ response }: ApolloRequestContext) => {
        const body = response.body;
        const result = body?.kind === 'single' ? body.singleResult : body?.initialResult;
        const failure = await end(result);
        if (failure !== undefined && result !== undefined) reportEndError(result, failure);
      },
    };
  }

  /** An operation that failed outside the request's hooks (a plugin threw): rolled back. */
  async unexpectedErrorProcessingRequest({ requestContext }: { requestContext: object }) {
    await this.running.get(requestContext)?.(undefined);
  }
}

Reflect.defineMetadata(APOLLO_PLUGIN_METADATA, true, ApolloOperationUnits);

import type { OnApplicationShutdown } from '@nestjs/common';
import {
  ApplicationConfig,
  type HttpAdapterHost,
  MetadataScanner,
  type ModuleRef,
  type ModulesContainer,
} from '@nestjs/core';
import type { Subscription } from 'rxjs';
import { messages } from '../errors/messages.js';
import { logger } from '../logger.js';

/** What the check reads of a microservice's transport server (`@nestjs/microservices`' `Server`). */
interface RpcServer {
  getHandlers?(): Map<unknown, unknown>;
}

/** `@nestjs/microservices`' `PATTERN_METADATA` (constants.ts): a `@MessagePattern()` / `@EventPattern()` method. */
const PATTERN_METADATA = 'microservices:pattern';

/** A server being connected, and how often the app's global interceptors were read since. */
interface Watch {
  server: RpcServer;
  reads: number;
  stop: () => void;
}

/**
 * Warns once when a microservice is connected to this HTTP app without `{ inheritAppConfig: true }`
 * while the interceptor is global: the microservice then has a configuration of its own, without
 * the interceptor, and its message handlers run outside any unit of work.
 *
 * Nest does not say which configuration a connected microservice got. What it shows: the
 * transport server of each microservice as it is created (`getRpcTargetRegistry()`), and then,
 * in the same synchronous `connectMicroservice()`, the microservice builds the handlers of its
 * static controllers, each reading the global interceptors of its configuration. So from a
 * server's creation to the end of that task, the reads of the app's own configuration are
 * counted: a server that got handlers of static controllers while the app's interceptors were
 * never read does not share them. (With `deferInitialization` the handlers come later: no check.)
 */
export class HybridAppCheck implements OnApplicationShutdown {
  private readonly subscription?: Subscription;
  private watch?: Watch;
  private warned = false;

  constructor(
    autoCommit: boolean,
    private readonly modules: ModulesContainer,
    private readonly adapterHost: HttpAdapterHost,
    moduleRef: ModuleRef,
  ) {
    if (!autoCommit) return;
    let config: ApplicationConfig;
    try {
      config = moduleRef.get(ApplicationConfig, { strict: false });
    } catch {
      return;
    }
    this.subscription = modules
      .getRpcTargetRegistry?.<RpcServer>()
      .subscribe((server) => this.connected(server, config));
  }

  /** Stops watching. */
  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
    this.settle();
  }

  /** A microservice is being created (inside `new NestMicroservice()`): watch until the task ends. */
  private connected(server: RpcServer, config: ApplicationConfig): void {
    this.settle(); // the previous server's handlers were all made before this one
    // A microservice app of its own (no HTTP adapter) has the app's configuration.
    if (this.warned || this.adapterHost.httpAdapter === undefined) return;
    const own = Object.getOwnPropertyDescriptor(config, 'getGlobalInterceptors');
    const read = config.getGlobalInterceptors;
    const watch: Watch = {
      server,
      reads: 0,
      stop: () => {
        if (own) Object.defineProperty(config, 'getGlobalInterceptors', own);
        else delete (config as Partial<ApplicationConfig>).getGlobalInterceptors;
      },
    };
    config.getGlobalInterceptors = function (this: ApplicationConfig) {
      watch.reads++;
      return read.call(this);
    };
    this.watch = watch;
    queueMicrotask(() => {
      if (this.watch === watch) this.settle();
    });
  }

  private settle(): void {
    const watch = this.watch;
    if (watch === undefined) return;
    this.watch = undefined;
    watch.stop();
    const handlers = watch.server.getHandlers?.().size ?? 0;
    if (handlers > 0 && watch.reads === 0 && !this.warned && this.hasStaticHandlers()) {
      this.warned = true;
      logger.warn(messages.microserviceWithoutAppConfig());
    }
  }

  /** Whether a static controller has a message or event handler (only those read the interceptors at once). */
  private hasStaticHandlers(): boolean {
    const scanner = new MetadataScanner();
    for (const module of this.modules.values()) {
      for (const wrapper of module.controllers.values()) {
        const prototype = (wrapper.metatype as { prototype?: object } | null)?.prototype;
        if (prototype === undefined || !wrapper.isDependencyTreeStatic()) continue;
        for (const key of scanner.getAllMethodNames(prototype)) {
          const method = (prototype as Record<string, object>)[key]!;
          if (Reflect.getMetadata(PATTERN_METADATA, method) !== undefined) return true;
        }
      }
    }
    return false;
  }
}

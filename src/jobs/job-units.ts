import type { OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { ModulesContainer } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import type { SessionRuntime } from '../context/session-runtime.js';
import { runInNewUnit } from '../factory/new-unit.js';
import { messages } from '../errors/messages.js';
import { logger } from '../logger.js';
import { isTransactionalMethod } from '../transactional/transactional-method.js';
import { isProcessor, jobMethodsOf } from './job-handlers.js';
import { JobMethod, type JobOwner, type JobRunner } from './job-method.js';

/**
 * Gives every job of a BullMQ (or Bull) processor and every tick of a `@Cron()`, `@Interval()` or
 * `@Timeout()` method of the app a unit of work of its own, through `runInNewContext()`: committed
 * when the job resolves, rolled back when it throws (the error still reaches the queue, whose
 * retry gets a new unit).
 *
 * The packages capture the methods in their own startup hooks (`onModuleInit`), in an order that
 * depends on the order of the imports. So the methods are wrapped earlier, while Nest creates the
 * app's instances (this is created then, before any hook runs): on the prototypes of the classes
 * the container holds, found by the packages' metadata. A factory provider's class is known only
 * once its factory ran, so its factory is wrapped to claim what it returns.
 *
 * Owns this app's claims on the wrapped methods; removes them when the app shuts down.
 */
export class JobUnits implements JobRunner, OnModuleInit, OnApplicationShutdown {
  private readonly claims: Array<[JobMethod, JobOwner]> = [];
  /** BullMQ processors without a `process()` method on their class (maybe an instance property). */
  private readonly unclaimed: InstanceWrapper[] = [];
  /** The prototypes claimed per provider (a request-scoped factory runs per job). */
  private readonly claimed = new WeakMap<InstanceWrapper, Set<object>>();

  constructor(
    private readonly runtime: SessionRuntime,
    modules: ModulesContainer,
  ) {
    if (!runtime.options.jobs) return;
    for (const module of modules.values()) {
      for (const wrapper of module.providers.values()) this.claim(wrapper, true);
      for (const wrapper of module.controllers.values()) this.claim(wrapper, false);
    }
  }

  /**
   * Runs one job or tick: in a new unit of work, or in the one of this app that is current
   * already (the method called from a request or another job, like `@Transactional()` joins).
   */
  run<T>(work: () => T): unknown {
    const unit = this.runtime.frame()?.unit;
    if (unit !== undefined && !unit.ended) return work();
    return runInNewUnit(this.runtime, work, 'job');
  }

  /**
   * Names the processors whose `process` is an instance property (an arrow function): nothing on
   * their class to wrap, so their jobs would run without a unit of work.
   */
  onModuleInit(): void {
    for (const wrapper of this.unclaimed) {
      const instance = wrapper.instance as { process?: unknown } | null;
      if (typeof instance?.process !== 'function') continue;
      logger.warn(messages.jobMethodNotOnClass(instance.constructor.name, 'process'));
    }
  }

  /** Lets go of this app's claims: its instances are done, and the wrappers stay for other apps. */
  onApplicationShutdown(): void {
    for (const [method, owner] of this.claims) method.owners.delete(owner);
    this.claims.length = 0;
  }

  private claim(wrapper: InstanceWrapper, provider: boolean): void {
    if (wrapper.isAlias) return;
    if (!wrapper.isFactory) {
      // A class provider's class, or the class of a value provider's value.
      const type = wrapper.metatype ?? (wrapper.instance as object | null)?.constructor;
      this.claimClass(wrapper, type, provider);
      return;
    }
    const made: unknown = wrapper.instance;
    if (made !== null && made !== undefined) {
      this.claimMade(wrapper, made, provider);
      return;
    }
    const factory = wrapper.metatype as (...args: unknown[]) => unknown;
    const claimMade = (value: unknown) => this.claimMade(wrapper, value, provider);
    const claiming = function (this: unknown, ...args: unknown[]) {
      const value = factory.apply(this, args);
      if (value instanceof Promise) return value.then(claimMade);
      return claimMade(value);
    };
    Object.defineProperty(claiming, 'name', { value: factory.name });
    wrapper.metatype = claiming;
  }

  /** Claims the class of what a factory made; returns it. */
  private claimMade<T>(wrapper: InstanceWrapper, made: T, provider: boolean): T {
    if (typeof made === 'object' && made !== null) {
      this.claimClass(wrapper, made.constructor, provider);
    }
    return made;
  }

  private claimClass(wrapper: InstanceWrapper, type: unknown, provider: boolean): void {
    const keys = jobMethodsOf(type, provider);
    if (provider && isProcessor(type) && !keys.includes('process')) this.unclaimed.push(wrapper);
    if (keys.length === 0) return;
    const prototype = (type as { prototype: object }).prototype;
    let prototypes = this.claimed.get(wrapper);
    if (prototypes === undefined) this.claimed.set(wrapper, (prototypes = new Set()));
    if (prototypes.has(prototype)) return;
    prototypes.add(prototype);
    for (const key of keys) {
      // Left to its own @Transactional(): outside any unit it opens one for the call, with its
      // options (isolationLevel, readOnly, timeout, retry), which joining would drop.
      if (isTransactionalMethod((prototype as Record<string, unknown>)[key])) continue;
      const method = JobMethod.of(prototype, key);
      const owner: JobOwner = { wrapper, runner: this };
      method.owners.add(owner);
      this.claims.push([method, owner]);
    }
  }
}

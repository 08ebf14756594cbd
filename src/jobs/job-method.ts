import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { copyMethodMetadata } from '../transactional/copy-method-metadata.js';

/** Runs one job or tick of an app in a unit of work (`JobUnits`). */
export interface JobRunner {
  run<T>(work: () => T): unknown;
}

/** One app's claim on a job method: its provider (or controller) and what runs its jobs. */
export interface JobOwner {
  readonly wrapper: InstanceWrapper;
  readonly runner: JobRunner;
}

/** Where a wrapped method keeps its `JobMethod` (registered: a second copy of the library finds it). */
const JOB_METHOD = Symbol.for('nestjs-typeorm-context.job-method');

type Method = (this: unknown, ...args: unknown[]) => unknown;

/**
 * A job method of a class (a processor's `process()`, a `@Cron()` method) wrapped on its
 * prototype, so that whatever captures it later (BullMQ's worker, the scheduler) calls the
 * wrapper. A prototype is shared by every app of the process: each call finds the app whose
 * provider the instance is (`owners`, one per app and provider that claimed it) and runs in a
 * unit of that app; an instance no app claimed (an app with `jobs: false`, a `new` one) runs the
 * method as it is.
 */
export class JobMethod {
  /** The claims of the apps running now; each app removes its own when it shuts down. */
  readonly owners = new Set<JobOwner>();
  /** The runner found for each instance, once found (request-scoped instances are new per job). */
  private readonly found = new WeakMap<object, JobRunner>();

  private constructor(private readonly original: Method) {}

  /** The job method `key` of `prototype`, wrapped there on first use. */
  static of(prototype: object, key: string): JobMethod {
    const current = (prototype as Record<string, Method>)[key]!;
    const wrapped = (current as { [JOB_METHOD]?: JobMethod })[JOB_METHOD];
    if (wrapped !== undefined && Object.hasOwn(prototype, key)) return wrapped;
    // Inherited from a job class wrapped already: wrap what that one wraps, with owners of its own.
    const method = new JobMethod(wrapped?.original ?? current);
    const original = method.original;
    const job = function (this: unknown, ...args: unknown[]) {
      const runner = method.runnerOf(this);
      if (runner === undefined) return original.apply(this, args);
      return runner.run(() => original.apply(this, args));
    };
    Object.defineProperty(job, 'name', { value: current.name });
    Object.defineProperty(job, 'length', { value: current.length });
    Object.defineProperty(job, JOB_METHOD, { value: method });
    // The packages find their handlers by this metadata (`@Cron()`'s, `@Process()`'s).
    copyMethodMetadata(current, job);
    const own = Object.getOwnPropertyDescriptor(prototype, key);
    Object.defineProperty(prototype, key, {
      value: job,
      writable: own?.writable ?? true,
      enumerable: own?.enumerable ?? false,
      configurable: true,
    });
    return method;
  }

  /** The runner of the app `instance` belongs to, if an app with jobs on claimed it. */
  runnerOf(instance: unknown): JobRunner | undefined {
    if (typeof instance !== 'object' || instance === null) return undefined;
    const known = this.found.get(instance);
    if (known !== undefined) return known;
    const runner = this.find(instance);
    if (runner !== undefined) this.found.set(instance, runner);
    return runner;
  }

  private find(instance: object): JobRunner | undefined {
    const scoped: JobRunner[] = [];
    for (const { wrapper, runner } of this.owners) {
      if (!wrapper.isDependencyTreeStatic()) scoped.push(runner);
      else if (holds(wrapper, instance)) return runner;
    }
    // Request-scoped: made per job, out of the container's reach, so which app made it is
    // unknown. A unit of each app that claimed the method: the instance's code uses its own app's,
    // the others' stay empty (ending one that never made a session costs nothing).
    if (scoped.length <= 1) return scoped[0];
    return {
      run: (work) =>
        scoped.reduceRight<() => unknown>((inner, runner) => () => runner.run(inner), work)(),
    };
  }
}

/** Whether `instance` is the provider's instance (or one of its transient instances). */
function holds(wrapper: InstanceWrapper, instance: object): boolean {
  if (wrapper.instance === instance) return true;
  if (!wrapper.isTransient) return false;
  return wrapper.getStaticTransientInstances().some((host) => host?.instance === instance);
}

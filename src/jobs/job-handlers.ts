import { MetadataScanner } from '@nestjs/core';

/*
 * The metadata keys the job packages mark their handlers with, as strings: importing the packages
 * would make the library require them. Each is checked against the package's own source.
 */

/** `@nestjs/bullmq`'s `PROCESSOR_METADATA` (bull.constants.ts): a `@Processor()` class, whose `process()` runs each job. */
const BULLMQ_PROCESSOR = 'bullmq:processor_metadata';
/** `@nestjs/bull`'s `BULL_MODULE_QUEUE` (bull.constants.ts): a `@Processor()` class of the legacy package. */
const BULL_QUEUE = 'bull:module_queue';
/** `@nestjs/bull`'s `BULL_MODULE_QUEUE_PROCESS`: one of that class's `@Process()` methods. */
const BULL_PROCESS = 'bull:module_queue_process';
/** `@nestjs/schedule`'s `SCHEDULER_TYPE` (schedule.constants.ts) on a scheduled method. */
const SCHEDULER_TYPE = 'SCHEDULER_TYPE';
/** `@nestjs/schedule`'s `SchedulerType` values, each with the options key its decorator sets too. */
const SCHEDULED: ReadonlyMap<unknown, string> = new Map([
  [1, 'SCHEDULE_CRON_OPTIONS'], // @Cron()
  [2, 'SCHEDULE_TIMEOUT_OPTIONS'], // @Timeout()
  [3, 'SCHEDULE_INTERVAL_OPTIONS'], // @Interval()
]);

const scanner = new MetadataScanner();

/** Whether `type` is a `@nestjs/bullmq` processor class. */
export function isProcessor(type: unknown): boolean {
  return typeof type === 'function' && Reflect.getMetadata(BULLMQ_PROCESSOR, type) !== undefined;
}

type Method = (...args: unknown[]) => unknown;

/**
 * The methods of `type` that run jobs or ticks: `process()` of a BullMQ processor, the
 * `@Process()` methods of a Bull processor (both only for providers, as those packages look only
 * there) and the `@Cron()` / `@Interval()` / `@Timeout()` methods (providers and controllers, as
 * `@nestjs/schedule` looks). Event listeners (`@OnWorkerEvent()`, `@OnQueueEvent()`) are not jobs.
 */
export function jobMethodsOf(type: unknown, provider: boolean): string[] {
  if (typeof type !== 'function' || typeof type.prototype !== 'object') return [];
  const prototype = type.prototype as Record<string, unknown>;
  const processor = provider && isProcessor(type);
  const bull = provider && Reflect.getMetadata(BULL_QUEUE, type) !== undefined;
  const keys: string[] = [];
  for (const key of scanner.getAllMethodNames(prototype)) {
    const method = prototype[key] as Method;
    if (
      (processor && key === 'process') ||
      (bull && Reflect.getMetadata(BULL_PROCESS, method) !== undefined) ||
      isScheduled(method)
    ) {
      keys.push(key);
    }
  }
  return keys;
}

function isScheduled(method: Method): boolean {
  const options = SCHEDULED.get(Reflect.getMetadata(SCHEDULER_TYPE, method));
  return options !== undefined && Reflect.getMetadata(options, method) !== undefined;
}

import { Controller, Get, Injectable } from '@nestjs/common';
import type { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { SessionContext, Transactional } from '../../src/index.js';
import type { TypeOrmContextInstrumentation } from '../../src/opentelemetry/index.js';
import { Example } from '../support/example.entity.js';
import { activeSpanId } from './otel-sdk.js';

/** A service with one REQUIRED block that notes the span active inside it. */
@Injectable()
export class Writer {
  /** The span active inside each block run. */
  readonly seen: Array<string | undefined> = [];
  constructor(private readonly sessions: SessionContext) {}

  @Transactional()
  async write(text: string): Promise<void> {
    this.seen.push(activeSpanId());
    await this.sessions.session().insert(Example, { text });
  }
}

/** GET /write: one block. */
@Controller()
export class WriteController {
  constructor(private readonly writer: Writer) {}

  @Get('write')
  async write(): Promise<string> {
    await this.writer.write('w');
    return 'ok';
  }
}

/** The app's parts, with `instrumentations` given to forRoot. */
export const writerParts = (instrumentations: TypeOrmContextInstrumentation[] = []) => ({
  controllers: [WriteController],
  providers: [Writer],
  context: { instrumentations },
});

/** This library's spans the exporter holds. */
export function ours(exporter: InMemorySpanExporter) {
  return exporter
    .getFinishedSpans()
    .filter((span) => span.instrumentationScope.name === 'nestjs-typeorm-context');
}

import type { LoggerService } from '@nestjs/common';

/** A Nest logger that keeps what was logged as an error (`app.useLogger(logger)`). */
export class CapturingLogger implements LoggerService {
  /** Every error line: message, stack and context joined. */
  readonly errors: string[] = [];

  log(): void {}

  warn(): void {}

  error(...parts: unknown[]): void {
    this.errors.push(parts.map(String).join(' '));
  }
}

import type { Variant } from '../shared.js';
import { type Instrumented, startOpenTelemetry } from './sdk.js';

/**
 * The `nestjs-typeorm-context` variant (the `session()` path of ntc-app.ts) with an OpenTelemetry
 * SDK and the instrumentations `which` names, registered before the app's modules (and so
 * TypeORM and pg) load: ntc-app.ts is imported only once they are.
 */
export async function otelVariant(which: Instrumented): Promise<Variant> {
  const spans = await startOpenTelemetry(which);
  return {
    module: async () => {
      const { libraryModule, sessionPath } = await import('../variants/ntc-app.js');
      return libraryModule(sessionPath);
    },
    spans,
  };
}

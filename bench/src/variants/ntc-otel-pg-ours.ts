import { otelVariant } from '../otel/variant.js';

/** This library with `@opentelemetry/instrumentation-pg` and `TypeOrmContextInstrumentation`: what an app would run. */
export default await otelVariant({ pg: true, ours: true });

import { otelVariant } from '../otel/variant.js';

/** This library with `@opentelemetry/instrumentation-pg`. */
export default await otelVariant({ pg: true });

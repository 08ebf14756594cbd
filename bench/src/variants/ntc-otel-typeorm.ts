import { otelVariant } from '../otel/variant.js';

/** This library with `@opentelemetry/instrumentation-typeorm`. */
export default await otelVariant({ typeorm: true });

import { otelVariant } from '../otel/variant.js';

/** This library with its own `TypeOrmContextInstrumentation` (spans and metrics). */
export default await otelVariant({ ours: true });

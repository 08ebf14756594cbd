import { otelVariant } from '../otel/variant.js';

/** This library with its own `TypeOrmContextInstrumentation`, spans only (`metrics: false`). */
export default await otelVariant({ ours: { metrics: false } });

import { otelVariant } from '../otel/variant.js';

/** This library with an OpenTelemetry SDK set up and no instrumentation (bench/src/otel/). */
export default await otelVariant({});

export {
  INSTRUMENTATION_NAME,
  INSTRUMENTATION_VERSION,
  TypeOrmContextInstrumentation,
  type TypeOrmContextInstrumentationConfig,
} from './instrumentation.js';

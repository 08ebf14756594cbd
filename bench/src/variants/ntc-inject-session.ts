import type { Variant } from '../shared.js';
import { injectSessionPath, libraryModule } from './ntc-app.js';

/** This library through `@InjectSession()` (app code in ntc-app.ts). */
const variant: Variant = { module: () => libraryModule(injectSessionPath) };
export default variant;

import type { Variant } from '../shared.js';
import { libraryModule, sessionPath } from './ntc-app.js';

/** This library through `sessionContext.session().getRepository()` (app code in ntc-app.ts). */
const variant: Variant = { module: () => libraryModule(sessionPath) };
export default variant;

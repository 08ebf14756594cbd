import type { Variant } from '../shared.js';
import { libraryModule, repositoriesPath } from './ntc-app.js';

/** This library through `forFeature([BenchItem])` + `@InjectRepository(BenchItem)` (ntc-app.ts). */
const variant: Variant = { module: () => libraryModule(repositoriesPath) };
export default variant;

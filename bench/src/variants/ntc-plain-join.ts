import type { Variant } from '../shared.js';
import { libraryModule, plainJoinPath } from './ntc-app.js';

/**
 * Plain TypeORM (`TypeOrmModule.forFeature([BenchItem])` + `@InjectRepository(BenchItem)`) joined
 * to this library's units by `forRoot({ plainTypeorm: 'join' })` (app code in ntc-app.ts).
 */
const variant: Variant = { module: () => libraryModule(plainJoinPath) };
export default variant;

import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { TypeOrmContextModuleOptions } from './interfaces/typeorm-context-options.interface.js';

/** `forRoot()` / `forRootAsync()` from Nest's builder; global unless `isGlobal: false`. */
export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: TYPEORM_CONTEXT_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<TypeOrmContextModuleOptions>({ moduleName: 'TypeOrmContext' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createTypeOrmContextOptions')
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();

import { Module } from '@nestjs/common';

/** The module `TypeOrmContextModule.forFeature()` returns: context-aware repositories. */
@Module({})
export class TypeOrmContextFeatureModule {}

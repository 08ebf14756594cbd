import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { TypeOrmContextModule } from 'nestjs-typeorm-context';
import { Note } from './note.entity';
import { NotesController } from './notes.controller';

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      entities: [Note],
      synchronize: true,
    }),
    TypeOrmContextModule.forRoot(),
    TypeOrmContextModule.forFeature([Note]),
  ],
  controllers: [NotesController],
})
export class AppModule {}

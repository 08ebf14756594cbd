import { BadRequestException, Body, Controller, Post } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Note } from './note.entity.js';

@Controller('notes')
export class NotesController {
  // TypeOrmContextModule.forFeature: this repository runs in the request's unit of work.
  constructor(@InjectRepository(Note) private readonly notes: Repository<Note>) {}

  /** Committed before the response is sent. */
  @Post()
  async create(@Body('text') text: string): Promise<Note> {
    return this.notes.save(this.notes.create({ text }));
  }

  /** Writes, then fails: the write is rolled back. */
  @Post('fail')
  async fail(@Body('text') text: string): Promise<never> {
    await this.notes.save(this.notes.create({ text }));
    throw new BadRequestException('rolled back');
  }
}

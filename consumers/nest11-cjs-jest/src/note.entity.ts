import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

// Each consumer app has a table of its own: they share the CI's database.
@Entity('consumer_nest11_cjs_jest_note')
export class Note {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column()
  text!: string;
}

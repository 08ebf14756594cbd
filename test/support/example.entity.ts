import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** The table of the original library's suite: one text column. */
@Entity('example')
export class Example {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 200 })
  text!: string;
}

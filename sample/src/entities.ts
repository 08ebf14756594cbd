import { Check, Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A note. The CHECK makes an empty text a real database error (see the NESTED batch). */
@Entity('note')
@Check(`"text" <> ''`)
export class Note {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 200 })
  text!: string;
}

/** An audit entry, written in its own transaction (REQUIRES_NEW) so it survives a rollback. */
@Entity('audit_entry')
export class AuditEntry {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 200 })
  message!: string;

  @CreateDateColumn()
  at!: Date;
}

/** A user the guard loads by token. */
@Entity('app_user')
export class User {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 50 })
  name!: string;

  @Column({ type: 'varchar', length: 100, unique: true })
  token!: string;
}

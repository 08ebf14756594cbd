import { Column, Entity, type EntityManager, PrimaryGeneratedColumn } from 'typeorm';

/** The replica suite's table. */
@Entity('replica_item')
export class ReplicaItem {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 200 })
  text!: string;
}

/** Where a statement ran: on a standby or not, and the server's port. */
export interface Where {
  replica: boolean;
  port: number;
}

/** Asks the server behind `manager` where it is. */
export async function where(manager: EntityManager): Promise<Where> {
  const rows: Array<{ replica: boolean; port: number }> = await manager.query(
    'SELECT pg_is_in_recovery() AS replica, inet_server_port() AS port',
  );
  return rows[0]!;
}

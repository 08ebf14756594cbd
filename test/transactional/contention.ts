import type { DataSource, EntityManager } from 'typeorm';
import type { Engine } from '../support/engines.js';
import { Gate } from './barrier.js';

/** Rows of `retry_counter` the deadlock's other side also locks, to be the heavier transaction. */
const BALLAST = 40;

/**
 * A real retryable conflict between the block under test and a second transaction on its own
 * connection. PostgreSQL: a REPEATABLE READ block reads a row, the other side updates and commits
 * it, the block's UPDATE fails with 40001. MariaDB: the two lock two rows in opposite order and
 * InnoDB kills the lighter one, the block, with 1213 (deadlock).
 */
export class Contention {
  private readonly first = new Gate();
  private readonly second = new Gate();

  constructor(
    private readonly engine: Engine,
    private readonly dataSource: DataSource,
  ) {}

  /** Creates `retry_counter` with rows 1..BALLAST at 0. */
  static async reset(dataSource: DataSource): Promise<void> {
    await dataSource.query(
      'CREATE TABLE IF NOT EXISTS retry_counter (id int PRIMARY KEY, n int NOT NULL)',
    );
    await dataSource.query('DELETE FROM retry_counter');
    const values = Array.from({ length: BALLAST }, (_, i) => `(${i + 1}, 0)`).join(', ');
    await dataSource.query(`INSERT INTO retry_counter (id, n) VALUES ${values}`);
  }

  /** `n` of rows 1 and 2, read on a fresh connection. */
  static async counters(dataSource: DataSource): Promise<[number, number]> {
    const rows: Array<{ id: number; n: number }> = await dataSource.query(
      'SELECT id, n FROM retry_counter WHERE id <= 2 ORDER BY id',
    );
    return [Number(rows[0]?.n), Number(rows[1]?.n)];
  }

  /** The block under test: conflicts on its first attempt only (later attempts run alone). */
  async block(manager: EntityManager, attempt: number): Promise<void> {
    if (this.engine.name === 'postgres') {
      await manager.query('SELECT n FROM retry_counter WHERE id = 1');
      if (attempt === 1) await this.handOver();
      await manager.query('UPDATE retry_counter SET n = n + 1 WHERE id = 1');
      return;
    }
    await manager.query('UPDATE retry_counter SET n = n + 1 WHERE id = 1');
    if (attempt === 1) await this.handOver();
    await manager.query('UPDATE retry_counter SET n = n + 1 WHERE id = 2');
  }

  /** The other transaction: adds 10 to row 1 (PostgreSQL) or to rows 1..BALLAST (MariaDB). */
  async other(): Promise<void> {
    await this.first.wait();
    if (this.engine.name === 'postgres') {
      await this.dataSource.query('UPDATE retry_counter SET n = n + 10 WHERE id = 1');
      this.second.open();
      return;
    }
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.startTransaction();
      await runner.query('UPDATE retry_counter SET n = n + 10 WHERE id >= 2');
      this.second.open();
      await runner.query('UPDATE retry_counter SET n = n + 10 WHERE id = 1');
      await runner.commitTransaction();
    } finally {
      await runner.release();
    }
  }

  private async handOver(): Promise<void> {
    this.first.open();
    await this.second.wait();
  }
}

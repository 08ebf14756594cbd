import { Controller, Get, HttpException, HttpStatus } from '@nestjs/common';
import { ScenariosService } from './scenarios.service.js';

/** One route per scenario of the original suite. */
@Controller()
export class ScenariosController {
  /** Set by the test: runs while the early-closed request holds no connection. */
  static longWork: () => Promise<void> = async () => undefined;

  constructor(private readonly scenarios: ScenariosService) {}

  @Get('simple_usage')
  simpleUsage() {
    return this.scenarios.simpleUsage();
  }

  @Get('atomic_base_example')
  atomicBaseExample() {
    return this.scenarios.atomicBaseExample();
  }

  @Get('atomic_and_previous_transaction')
  atomicAndPreviousTransaction() {
    return this.scenarios.atomicAndPreviousTransaction();
  }

  @Get('early_commit')
  earlyCommit() {
    return this.scenarios.earlyCommit();
  }

  @Get('early_rollback')
  earlyRollback() {
    return this.scenarios.earlyRollback();
  }

  @Get('early_connection_close')
  earlyConnectionClose() {
    return this.scenarios.earlyConnectionClose(ScenariosController.longWork);
  }

  @Get('auto_rollback_by_exception')
  async autoRollbackByException() {
    await this.scenarios.insert('auto_rollback_by_exception');
    throw new Error('something went wrong');
  }

  @Get('auto_rollback_by_status_code')
  async autoRollbackByStatusCode() {
    await this.scenarios.insert('auto_rollback_by_status_code');
    throw new HttpException('server error', HttpStatus.INTERNAL_SERVER_ERROR);
  }

  @Get('auto_rollback_by_client_error')
  async autoRollbackByClientError() {
    await this.scenarios.insert('auto_rollback_by_client_error');
    throw new HttpException('bad request', HttpStatus.BAD_REQUEST);
  }

  @Get('concurrent_queries')
  async concurrentQueries() {
    const results = await this.scenarios.concurrentQueries();
    return results.map((result) => result.status);
  }
}

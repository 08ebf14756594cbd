/** The shop on typeorm-transactional: a @Transactional() service places the order. */
import { Controller, Get, Injectable, Module, Param, Post } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { addTransactionalDataSource, Transactional } from 'typeorm-transactional';
import { DATABASE_URL } from '../shared.js';
import { orderLines, placeOrder, SHOP_ENTITIES } from './shop.js';

@Injectable()
class OrdersService {
  constructor(private readonly dataSource: DataSource) {}

  @Transactional()
  place() {
    return placeOrder(this.dataSource.manager, `c${Date.now()}`);
  }

  lines(id: number) {
    return orderLines(this.dataSource.manager, id);
  }
}

@Controller('orders')
class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  @Post()
  async place() {
    return { id: await this.orders.place() };
  }

  @Get(':id/lines')
  async lines(@Param('id') id: string) {
    return { lines: await this.orders.lines(Number(id)) };
  }
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      useFactory: () => ({
        type: 'postgres',
        url: DATABASE_URL,
        entities: SHOP_ENTITIES,
        synchronize: true,
        logging: false,
      }),
      dataSourceFactory: async (options?: DataSourceOptions) =>
        addTransactionalDataSource(new DataSource(options!)),
    }),
  ],
  controllers: [OrdersController],
  providers: [OrdersService],
})
export class TransactionalShopModule {}

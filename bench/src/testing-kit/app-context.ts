/** The shop on nestjs-typeorm-context: the request's session places the order. */
import { Controller, Get, Module, Param, Post } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionContext, TypeOrmContextModule } from '../../../dist/index.js';
import { DATABASE_URL } from '../shared.js';
import { orderLines, placeOrder, SHOP_ENTITIES } from './shop.js';

@Controller('orders')
class OrdersController {
  constructor(private readonly context: SessionContext) {}

  @Post()
  async place() {
    return { id: await placeOrder(this.context.session(), `c${Date.now()}`) };
  }

  @Get(':id/lines')
  async lines(@Param('id') id: string) {
    return { lines: await orderLines(this.context.session(), Number(id)) };
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: DATABASE_URL,
      entities: SHOP_ENTITIES,
      synchronize: true,
      logging: false,
    }),
    TypeOrmContextModule.forRoot(),
  ],
  controllers: [OrdersController],
})
export class ContextShopModule {}

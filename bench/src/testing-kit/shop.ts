/**
 * The app the testing-kit benchmark tests: five tables, and one endpoint that writes ten rows
 * across them (a customer, two products, an order, five order lines, an audit entry).
 */
import { Column, Entity, type EntityManager, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';

@Entity('kit_customer')
export class Customer {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar' }) name!: string;
}

@Entity('kit_product')
export class Product {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar' }) name!: string;
  @Column({ type: 'int' }) price!: number;
}

@Entity('kit_order')
export class Order {
  @PrimaryGeneratedColumn() id!: number;
  @ManyToOne(() => Customer, { nullable: false }) customer!: Customer;
}

@Entity('kit_order_line')
export class OrderLine {
  @PrimaryGeneratedColumn() id!: number;
  @ManyToOne(() => Order, { nullable: false }) order!: Order;
  @ManyToOne(() => Product, { nullable: false }) product!: Product;
  @Column({ type: 'int' }) quantity!: number;
}

@Entity('kit_audit')
export class Audit {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar' }) event!: string;
}

export const SHOP_ENTITIES = [Customer, Product, Order, OrderLine, Audit];

/** What a test truncates before it runs, in the truncating mode. */
export const TRUNCATE =
  'TRUNCATE kit_order_line, kit_order, kit_product, kit_customer, kit_audit RESTART IDENTITY CASCADE';

/** The ten rows of one order, written through `manager`. Resolves to the order's id. */
export async function placeOrder(manager: EntityManager, name: string): Promise<number> {
  const customer = await manager.save(Customer, { name });
  const products = await manager.save(Product, [
    { name: `${name}-a`, price: 3 },
    { name: `${name}-b`, price: 5 },
  ]);
  const order = await manager.save(Order, { customer });
  await manager.save(
    OrderLine,
    [1, 2, 3, 4, 5].map((quantity) => ({ order, product: products[quantity % 2]!, quantity })),
  );
  await manager.save(Audit, { event: `order ${order.id} placed` });
  return order.id;
}

/** The lines of order `id`, as the endpoint answers them. */
export async function orderLines(manager: EntityManager, id: number): Promise<number> {
  const rows: Array<{ n: number }> = await manager.query(
    'SELECT count(*)::int AS n FROM kit_order_line WHERE "orderId" = $1',
    [id],
  );
  return Number(rows[0]!.n);
}

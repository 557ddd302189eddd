// The app: writes orders with Prisma. prisma-outbox writes each order's message in the order's own transaction, so
// a message exists if and only if its order committed; the worker publishes it afterwards.
//   DATABASE_URL=postgresql://... node --import tsx examples/write-orders.ts [count]
// examples/run-embedded.ts calls writeOrders() in its own process instead.
import { fileURLToPath } from "node:url";
import { PrismaPg } from "@prisma/adapter-pg";
import { outbox } from "../src/index.ts"; // in your app: from "prisma-outbox"
import { PrismaClient } from "./generated/prisma/client.ts";

/** Commits `count` orders, each with its order.created, the last one with an order.invoice.requested too. */
export async function writeOrders(databaseUrl: string, count: number, log: (line: string) => void = console.log) {
  const base = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
  const prisma = base.$extends(
    outbox<typeof base>({
      exchange: "shop",
      events: { Order: { create: true } }, // every order.create also writes an `order.created` message
      queue: false, // no relay in this process: the worker is woken by NOTIFY when a transaction commits
    }),
  );

  try {
    // Numbers go on from the orders already there, so that running this again does not hit the unique constraint.
    const first = (await prisma.order.count()) + 1;
    const numberOf = (i: number) => `SO-${String(i).padStart(4, "0")}`;

    for (let i = first; i < first + count - 1; i++) {
      const order = await prisma.order.create({ data: { number: numberOf(i), amount: 1000 + 250 * i } });
      log(`committed order ${order.number} (amount ${order.amount}) + order.created`);
    }

    // The last order also asks for an invoice: an explicit message, written in the same transaction as the order.
    // Had anything in the transaction failed, neither the order nor either message would exist.
    const last = first + count - 1;
    const order = await prisma.$transaction(async (tx) => {
      const order = await tx.order.create({ data: { number: numberOf(last), amount: 1000 + 250 * last } });
      await tx.$enqueue({
        routingKey: "order.invoice.requested",
        payload: { orderId: order.id, number: order.number, amount: order.amount },
      });
      return order;
    });
    log(`committed order ${order.number} (amount ${order.amount}) + order.created + order.invoice.requested`);
  } finally {
    await prisma.$disconnect();
  }
}

// Run as a script (not imported): the arguments and DATABASE_URL from the command line.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const databaseUrl = process.env.DATABASE_URL;
  const count = Number(process.argv[2] ?? 10);
  if (!databaseUrl || !Number.isInteger(count) || count < 1) {
    console.error("Usage: DATABASE_URL=postgresql://... write-orders.ts [count of orders, default 10]");
    process.exit(2);
  }
  await writeOrders(databaseUrl, count);
}

// Type tests, checked by `npm run typecheck` (tsc): each @ts-expect-error must be an error, the rest must compile.
import { outbox } from "../../src/index.js";
import type { PrismaClient } from "../support/prisma.js";

declare const base: PrismaClient;

// Records are typed from the client's models.
outbox<typeof base>({
  exchange: "x",
  events: {
    Order: {
      create: (order) => ({ routingKey: `order.${order.number}`, payload: { id: order.id, amount: order.amount } }),
      updateManyAndReturn: (order) => (order.status === "gone" ? null : [{ routingKey: "a", payload: order }]),
      delete: "order.deleted",
    },
    Customer: { upsert: true },
  },
});

outbox<typeof base>({
  events: {
    Order: {
      // @ts-expect-error `nope` is not a field of Order
      create: (order) => ({ routingKey: "k", payload: order.nope }),
    },
  },
});

// @ts-expect-error `Ordr` is not a model
outbox<typeof base>({ events: { Ordr: { create: true } } });

// @ts-expect-error createMany returns a count: not an event operation
outbox<typeof base>({ events: { Order: { createMany: true } } });

// $enqueue is typed on the extended client and on a transaction's client.
const prisma = base.$extends(outbox({ exchange: "x" }));
export async function typed(): Promise<string[]> {
  await prisma.$transaction(async (tx) => {
    await tx.$enqueue({ routingKey: "k", payload: { a: 1 }, headers: { h: 1 } });
    // @ts-expect-error headers are flat scalars
    await tx.$enqueue({ routingKey: "k", payload: 1, headers: { h: { nested: true } } });
    // Prisma's own typing of $transaction is intact.
    const order = await tx.order.findFirst();
    order?.amount.toFixed();
  });
  // @ts-expect-error routingKey is required
  await prisma.$enqueue({ payload: 1 });
  return prisma.$enqueue([{ routingKey: "k", payload: null }]);
}

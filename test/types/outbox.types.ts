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

// Keys are model names as written in the schema, including a lower-case one; records hold Prisma's own types.
outbox<typeof base>({
  events: {
    audit_log: { create: (log) => ({ exchange: "x", routingKey: "audit", payload: { note: log.note } }) },
    Invoice: {
      create: (invoice) => {
        const id: bigint = invoice.id;
        const total: string = invoice.total.toFixed(2);
        const scan: Uint8Array | null = invoice.scan;
        return { exchange: "x", routingKey: "i", payload: { id: id.toString(), total, size: scan?.length ?? 0 } };
      },
    },
  },
});
// @ts-expect-error the delegate name is not the key: use the model name `Invoice`
outbox<typeof base>({ exchange: "x", events: { invoice: { create: true } } });

// $enqueue cannot be part of a batch $transaction([...]) (refused at run time too).
export async function batch(): Promise<unknown> {
  // @ts-expect-error $enqueue returns a plain Promise, not a PrismaPromise
  return prisma.$transaction([prisma.order.count(), prisma.$enqueue({ routingKey: "k", payload: 1 })]);
}

// transactionOptions are typed.
outbox({ transactionOptions: { timeout: 10_000, maxWait: 5_000, isolationLevel: "Serializable" } });
// @ts-expect-error isolation levels are Prisma's names
outbox({ transactionOptions: { isolationLevel: "SERIALIZABLE" } });

// Ordering keys: `key` on messages; in declared events a field of the record or a function of it.
outbox<typeof base>({
  exchange: "x",
  events: {
    Order: {
      create: { key: "number" },
      update: { routingKey: "order.changed", key: (order) => order.number },
      delete: (order) => ({ routingKey: "order.deleted", payload: order.id.toString(), key: order.number }),
    },
  },
});
// @ts-expect-error `nope` is not a field of Order
outbox<typeof base>({ exchange: "x", events: { Order: { create: { key: "nope" } } } });
export async function keyed(): Promise<string[]> {
  // @ts-expect-error a key is a string
  await prisma.$enqueue({ routingKey: "k", payload: 1, key: 42 });
  return prisma.$enqueue({ routingKey: "k", payload: 1, key: "order-1" });
}

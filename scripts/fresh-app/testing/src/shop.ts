// The fresh app's own code, as a user's app would have it: an outbox() client whose Order writes publish
// order.created, and a billing inbox whose handler makes one invoice per order, in the app's Prisma transaction.
// Its tests (test/) drive it with `prisma-outbox/testing`: no RabbitMQ, the real PostgreSQL.
import { PrismaPg } from "@prisma/adapter-pg";
import { inbox, outbox } from "prisma-outbox";
import { PrismaClient } from "../generated/client.js";

export const EXCHANGE = "shop";

export function connect(databaseUrl: string) {
  const base = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
  const prisma = base.$extends(outbox<typeof base>({ exchange: EXCHANGE, events: { Order: { create: true } } }));
  return { base, prisma };
}
export type Prisma = ReturnType<typeof connect>["prisma"];

/** The use case under test: one order, its order.created in the same transaction. */
export function placeOrder(prisma: Prisma, number: string, amount: number) {
  return prisma.order.create({ data: { number, amount } });
}

export type ShopMessages = { "order.created": { id: number; number: string; amount: number } };
const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** Billing: one invoice per order; an order whose amount is negative fails (the tests' retry), `failures` times. */
export function billingInbox(prisma: Prisma, failures = new Map<number, number>()) {
  return inbox<ShopMessages, Prisma>({
    prisma,
    logger: silent,
    exchanges: [{ name: EXCHANGE, type: "topic" }],
    queue: { name: "billing", bindings: [{ exchange: EXCHANGE, routingKey: "order.*" }] },
    maxAttempts: 3,
    retryBaseDelayMs: 30_000,
    retryMaxDelayMs: 60_000,
    handlers: {
      invoice: {
        on: "order.created",
        handle: async (message, tx) => {
          await tx.invoice.create({ data: { orderId: message.payload.id, messageId: message.messageId } });
          const left = failures.get(message.payload.id) ?? 0;
          if (left > 0) {
            failures.set(message.payload.id, left - 1);
            throw new Error(`billing is down for order ${message.payload.id}`);
          }
        },
      },
    },
  });
}

// Type tests of typed contracts, checked by `npm run typecheck`: the payload type flows from one defineMessage() to
// `$enqueue` (the schema's input) and to the handler (the schema's output), with zod and with valibot.
import * as v from "valibot";
import { z } from "zod";
import { type ContractInput, type ContractOutput, defineMessage, inbox, outbox } from "../../src/index.js";
import type { PrismaClient } from "../support/prisma.js";

declare const base: PrismaClient;

const OrderPlaced = defineMessage({
  routingKey: "order.placed",
  schema: z.object({ id: z.string(), total: z.number(), note: z.string().default("") }),
});
const OrderPaid = defineMessage({
  routingKey: "order.paid",
  schema: v.object({
    id: v.string(),
    paidAt: v.pipe(
      v.string(),
      v.transform((s) => new Date(s)),
    ),
  }),
});

// The routing key stays a literal type; input and output are the schema's.
const key: "order.placed" = OrderPlaced.routingKey;
const input: ContractInput<typeof OrderPlaced> = { id: "1", total: 2 }; // `note` has a default: optional on input
const output: ContractOutput<typeof OrderPlaced> = { id: "1", total: 2, note: "" };
// @ts-expect-error on output, `note` is always there
const missing: ContractOutput<typeof OrderPlaced> = { id: "1", total: 2 };
void [key, input, output, missing];

// Sending: the payload is the schema's input.
const prisma = base.$extends(outbox({ exchange: "shop" }));
export async function send(): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.$enqueue(OrderPlaced, { id: "1", total: 10 }, { key: "1" });
    await tx.$enqueue(OrderPaid, { id: "1", paidAt: "2026-12-03T00:00:00Z" });
    // @ts-expect-error total is a number
    await tx.$enqueue(OrderPlaced, { id: "1", total: "10" });
    // @ts-expect-error the contract gives the routing key
    await tx.$enqueue(OrderPlaced, { id: "1", total: 1 }, { routingKey: "other" });
    // Plain messages as before.
    await tx.$enqueue({ routingKey: "k", payload: { a: 1 } });
  });
  await prisma.$enqueue(OrderPlaced, { id: "2", total: 3 });
}

// Handling: without type arguments, each contract handler's payload is its schema's output, and tx is the client's.
inbox({
  prisma: base,
  queue: { name: "billing" },
  handlers: {
    placed: {
      contract: OrderPlaced,
      handle: async (message, tx) => {
        const note: string = message.payload.note;
        const total: number = message.payload.total;
        // @ts-expect-error no such field
        message.payload.amount;
        await tx.order.findFirst({ where: { number: note } });
        return total;
      },
    },
    paid: {
      contract: OrderPaid,
      handle: async (message) => {
        const when: Date = message.payload.paidAt; // transformed: a Date on the handler's side
        return when;
      },
    },
    audit: { pattern: "order.#", handle: async (message) => message.payload },
  },
});

inbox({
  prisma: base,
  queue: { name: "q" },
  handlers: {
    placed: {
      contract: OrderPlaced,
      handle: async (message) => {
        // @ts-expect-error total is a number, not a string
        const total: string = message.payload.total;
        return total;
      },
    },
  },
});

inbox({
  prisma: base,
  queue: { name: "q" },
  handlers: {
    // @ts-expect-error a contract handler takes its routing key from the contract
    placed: { contract: OrderPlaced, on: "order.placed", handle: async () => {} },
  },
});

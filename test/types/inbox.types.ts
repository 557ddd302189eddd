// Type tests of inbox(), checked by `npm run typecheck`: each @ts-expect-error must be an error, the rest must compile.
import type pg from "pg";
import { type InboxEvent, inbox } from "../../src/index.js";
import type { PrismaClient } from "../support/prisma.js";

declare const prisma: PrismaClient;
type Messages = { "order.created": { id: string; total: string }; "order.paid": { id: string; paidAt: string } };

inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "billing", bindings: [{ exchange: "shop", routingKey: "order.*" }] },
  handlers: {
    // `on` an exact routing key: the payload is that key's type, and tx is the client's transaction client.
    invoice: {
      on: "order.created",
      handle: async (message, tx) => {
        const total: string = message.payload.total;
        await tx.order.findFirst({ where: { number: total } });
      },
    },
    paid: {
      on: "order.paid",
      handle: async (message) => {
        const paidAt: string = message.payload.paidAt;
        // @ts-expect-error order.paid has no total
        message.payload.total;
        return paidAt;
      },
    },
    // `pattern` and `type`: the payload is unknown until checked.
    audit: {
      pattern: ["order.#"],
      handle: async (message, _tx, { signal }) => {
        // @ts-expect-error unknown payload
        message.payload.id;
        return signal.aborted;
      },
    },
  },
});

inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "q" },
  handlers: {
    // @ts-expect-error "order.shipped" is not in the message map
    nope: { on: "order.shipped", handle: async () => {} },
  },
});

inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "q" },
  handlers: {
    wrongTx: {
      on: "order.created",
      handle: async (_message, tx) => {
        // @ts-expect-error the transaction client has no model named ordr
        await tx.ordr.findFirst();
      },
    },
  },
});

// The relay's words, and the old ones (deprecated) for one release.
const box = inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "q" },
  handlers: { h: { on: "order.created", handle: async () => {} } },
  keyAfterDeadLetter: "continue",
});
inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "q" },
  handlers: { h: { on: "order.created", handle: async () => {} } },
  keyAfterDead: "stop",
});
inbox<Messages, typeof prisma>({
  prisma,
  queue: { name: "q" },
  handlers: { h: { on: "order.created", handle: async () => {} } },
  // @ts-expect-error not a policy
  keyAfterDeadLetter: "skip",
});
box.onEvent((event: InboxEvent) => {
  if (event.type === "dead-lettered") {
    const attempts: number = event.attempts;
    // @ts-expect-error the new event has only the new field
    event.attempt;
    return attempts;
  }
  if (event.type === "dead" || event.type === "handled" || event.type === "retry-scheduled") {
    const both: number = event.attempts + event.attempt;
    return both;
  }
  return undefined;
});

// The relay's connection forms.
declare const appPool: pg.Pool;
void box.start({ databaseUrl: "postgres://x", amqpUrl: "amqp://x" });
void box.start({ database: appPool, amqpUrl: "amqp://x" });
void box.start({ database: { host: "db", password: async () => "s" }, amqpUrl: "amqp://x" });

// Type tests of inbox(), checked by `npm run typecheck`: each @ts-expect-error must be an error, the rest must compile.
import { inbox } from "../../src/index.js";
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

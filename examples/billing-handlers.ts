// The billing service: makes an invoice for every order the shop commits. A handlers module, as the bundled CLI
// loads it:
//   DATABASE_URL=postgresql://... AMQP_URL=amqp://... node --import tsx src/cli/main.ts inbox \
//     --handlers ./examples/billing-handlers.ts
// (in your project: `npx prisma-outbox inbox --handlers ./dist/billing-handlers.js`, and `inbox` from "prisma-outbox").
//
// The CLI stores each delivery in the inbox table before acking it, deduplicated on (messageId, handler), and runs
// the handler in an interactive transaction of this module's Prisma client, the same transaction that marks the
// message processed: the invoice and the mark commit together, so a message delivered twice makes one invoice.
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { inbox } from "../src/index.ts"; // in your app: from "prisma-outbox"
import { PrismaClient } from "./generated/prisma/client.ts";

/** The messages billing takes, by routing key: an `order.created` payload is the Order record as JSON. */
interface Messages {
  "order.created": { id: number; number: string; amount: number; createdAt: string };
}

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error("Set DATABASE_URL to the database with the inbox table and the Invoice table");

// The shop and billing share the example's database, for brevity; a real billing service has a database of its own,
// with the inbox migration and its own tables (the inbox needs nothing of the sender's database).
// Exported for a process that loads this module itself (examples/run-embedded.ts), to disconnect it at the end.
// On a pool of the module's own whose connections listen for their errors: a backend that ends as a connection is
// handed to a handler's transaction must fail that attempt, not end the worker (docs/operating.md, "A lost database
// connection").
const pool = new pg.Pool({ connectionString: databaseUrl });
pool.on("error", (error) => console.warn("billing: database connection lost:", error.message));
pool.on("connect", (client) => client.on("error", () => {}));
export const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });

const billing = inbox<Messages, typeof prisma>({
  prisma,
  // A durable queue of billing's own: messages published while billing is down wait in it.
  queue: { name: "billing", bindings: [{ exchange: "shop", routingKey: "order.created" }] },
  // Declared as the worker declares it (OUTBOX_EXCHANGES=shop:topic), so whichever starts first creates it.
  exchanges: [{ name: "shop", type: "topic" }],
  handlers: {
    // The handler's name is half of the deduplication key (messageId, handler): keep it stable.
    "create-invoice": {
      on: "order.created",
      handle: async (message, tx) => {
        // `message.payload` is typed from Messages["order.created"]; `tx` is this client's transaction client.
        // Only writes through `tx` belong to the transaction: no calls to other services from here unless they are
        // idempotent themselves, since a handler that fails is run again.
        await tx.invoice.create({
          data: { orderNumber: message.payload.number, amount: message.payload.amount, messageId: message.messageId },
        });
      },
    },
  },
});

// Events come after COMMIT: "handled" means the invoice is in the database.
billing.onEvent((event) => {
  if (event.type === "handled") {
    console.log(`invoiced: ${event.handler} handled ${event.messageId} (attempt ${event.attempt})`);
  } else if (event.type === "received" && event.duplicates > 0) {
    const n = event.duplicates;
    console.log(
      `dropped ${n} duplicate deliver${n === 1 ? "y" : "ies"}: already in the inbox, acked and not handled again`,
    );
  }
});

export default billing;

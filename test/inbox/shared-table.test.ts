// Several inboxes on one table (one database, one schema), each with its own queue and handlers: each claims only
// its handlers' rows. A row claimed by an inbox without its handler could only fail, and end dead after maxAttempts.
// On the test kit's broker: the table, the claims and the handlers are the real ones.
import { afterAll, expect, it } from "vitest";
import { inbox } from "../../src/index.js";
import { MemoryBroker, startInboxHarness } from "../../src/testing/index.js";
import { recordEffect } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const databaseUrl = await useTestDatabase();
const prisma = newPrismaClient(databaseUrl);
const pool = newPool(databaseUrl);
afterAll(async () => {
  await pool.end();
  await prisma.$disconnect();
});

function define(name: string) {
  return inbox({
    prisma,
    queue: { name, bindings: [] },
    logger: quiet,
    // Claims every 10 ms, with a handler slow enough that both inboxes claim while the other's rows are due.
    sweepIntervalMs: 10,
    concurrency: 2,
    handlers: {
      [name]: {
        on: "work",
        handle: async (message, tx) => {
          await new Promise((r) => setTimeout(r, 5));
          await recordEffect(tx as never, message, name);
        },
      },
    },
  });
}

it("two inboxes with different handlers share the table without taking each other's rows", async () => {
  const broker = new MemoryBroker();
  const billing = await startInboxHarness(define("billing"), { databaseUrl, broker, timeoutMs: 20_000 });
  const shipping = await startInboxHarness(define("shipping"), { databaseUrl, broker, timeoutMs: 20_000 });
  try {
    const messages = Array.from({ length: 40 }, (_, i) => ({ routingKey: "work", payload: { i } }));
    const [a, b] = await Promise.all([billing.deliver(messages), shipping.deliver(messages)]);
    for (const outcome of [...a, ...b]) expect(outcome.handlers).toMatchObject([{ status: "processed", attempts: 1 }]);
    const { rows } = await pool.query(
      `SELECT count(*)::int AS failed FROM inbox_message WHERE last_error IS NOT NULL OR status <> 'processed'`,
    );
    expect(rows[0].failed).toBe(0);
  } finally {
    await billing.stop();
    await shipping.stop();
  }
});

// Typed contracts against the real PostgreSQL and RabbitMQ, with two schema libraries (zod and valibot) and an async
// schema: one defineMessage() validates before the INSERT of `$enqueue(contract, payload)` (nothing written when
// invalid) and at the inbox before `{ contract, handle }` runs (an invalid payload dead with the schema's issues,
// the handler not run); the handler gets the schema's output.
import { randomUUID } from "node:crypto";
import * as v from "valibot";
import { afterAll, beforeEach, expect, inject, it } from "vitest";
import { z } from "zod";
import { createRelay, defineMessage, type InboxEvent, inbox, OutboxSchemaError, outbox } from "../../src/index.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);
afterAll(() => pool.end());

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect", outbox_message RESTART IDENTITY');
});

// zod: a default (output differs from input). valibot: a transform. zod async: a refinement that awaits.
const Placed = defineMessage({
  routingKey: "contract.placed",
  schema: z.object({ id: z.string(), total: z.number().int().positive(), note: z.string().default("none") }),
});
const Paid = defineMessage({
  routingKey: "contract.paid",
  schema: v.object({
    id: v.string(),
    cents: v.pipe(
      v.number(),
      v.transform((n) => n / 100),
    ),
  }),
});
const Shipped = defineMessage({
  routingKey: "contract.shipped",
  schema: z.object({ id: z.string() }).refine(async (p) => {
    await new Promise((r) => setTimeout(r, 1));
    return !p.id.startsWith("bad");
  }, "the id is refused by an async check"),
});

async function setUp() {
  const { exchange, queue } = await exchangeAndQueue("contracts");
  const prisma = newPrismaClient(databaseUrl).$extends(outbox({ exchange, queue: false }));
  const handled: string[] = [];
  const events: InboxEvent[] = [];
  const box = track(
    inbox({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: "contract.#" }] },
      handlers: {
        placed: {
          contract: Placed,
          handle: async (message, tx) => {
            handled.push(message.payload.id);
            await recordEffect(tx, message, "placed");
          },
        },
        paid: {
          contract: Paid,
          handle: async (message, tx) => {
            handled.push(message.payload.id);
            await recordEffect(tx, message, "paid");
          },
        },
        shipped: {
          contract: Shipped,
          handle: async (message, tx) => {
            handled.push(message.payload.id);
            await recordEffect(tx, message, "shipped");
          },
        },
      },
      sweepIntervalMs: 100,
      retryBaseDelayMs: 10,
      retryMaxDelayMs: 50,
      logger: quiet,
    }),
  );
  box.onEvent((e) => events.push(e));
  await box.start({ databaseUrl, amqpUrl });
  const relay = track(
    createRelay({ databaseUrl, amqpUrl, listen: false, sweepIntervalMs: 100, sweepMinAgeMs: 0, logger: false }),
  );
  await relay.start();
  const publishRaw = async (routingKey: string, body: unknown) => {
    channel.publish(exchange, routingKey, Buffer.from(JSON.stringify(body)), { messageId: randomUUID() });
    await channel.waitForConfirms();
  };
  return { prisma, handled, events, publishRaw, stopPrisma: () => prisma.$disconnect() };
}

async function rows() {
  return (
    await pool.query<{ handler: string; status: string; attempts: number; last_error: string | null }>(
      "SELECT handler, status, attempts, last_error FROM inbox_message ORDER BY id",
    )
  ).rows;
}
async function effects() {
  return (await pool.query<{ handler: string; payload: unknown }>('SELECT handler, payload FROM "Effect" ORDER BY id'))
    .rows;
}

it("the same definitions send and handle: zod, valibot and an async schema, the handler getting the output", async () => {
  const { prisma, stopPrisma } = await setUp();
  try {
    await prisma.$transaction(async (tx) => {
      await tx.$enqueue(Placed, { id: "p1", total: 3 });
      await tx.$enqueue(Paid, { id: "c1", cents: 1250 }, { key: "c1" });
      await tx.$enqueue(Shipped, { id: "s1" });
    });
    await expect.poll(async () => (await effects()).length, { timeout: 20_000 }).toBe(3);
    const byHandler = Object.fromEntries((await effects()).map((e) => [e.handler, e.payload]));
    expect(byHandler).toEqual({
      placed: { id: "p1", total: 3, note: "none" }, // zod's default, applied on the receiving side
      paid: { id: "c1", cents: 12.5 }, // valibot's transform
      shipped: { id: "s1" },
    });
    // The wire carried the input as given, not the output: the inbox row holds the body as received.
    const stored = await pool.query("SELECT payload FROM inbox_message WHERE handler = 'placed'");
    expect(stored.rows[0].payload).toEqual({ id: "p1", total: 3 });
    expect((await rows()).every((r) => r.status === "processed" && r.attempts === 1)).toBe(true);
  } finally {
    await stopPrisma();
  }
});

it("an invalid payload is refused before the INSERT with the schema's issues, sync or async: nothing written", async () => {
  const { prisma, stopPrisma } = await setUp();
  try {
    const zodError = await prisma.$enqueue(Placed, { id: "p", total: -1 }).catch((e: unknown) => e);
    expect(zodError).toBeInstanceOf(OutboxSchemaError);
    expect((zodError as OutboxSchemaError).routingKey).toBe("contract.placed");
    expect((zodError as OutboxSchemaError).issues[0]?.path).toEqual(["total"]);
    expect((zodError as Error).message).toMatch(/"contract\.placed" does not match its contract: \$\.total: /);

    const valibotError = await prisma.$enqueue(Paid, { id: "c", cents: "12" as never }).catch((e: unknown) => e);
    expect(valibotError).toBeInstanceOf(OutboxSchemaError);
    expect((valibotError as Error).message).toMatch(/\$\.cents: /);

    // In a transaction: the error rolls back the transaction's other writes as any thrown error does.
    const asyncError = await prisma
      .$transaction(async (tx) => {
        await tx.$enqueue(Placed, { id: "ok", total: 1 });
        await tx.$enqueue(Shipped, { id: "bad-1" });
      })
      .catch((e: unknown) => e);
    expect(asyncError).toBeInstanceOf(OutboxSchemaError);
    expect((asyncError as Error).message).toMatch(/refused by an async check/);
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox_message")).rows[0].n).toBe(0);
  } finally {
    await stopPrisma();
  }
});

it("a received payload its contract refuses is dead with the schema's issues, the handler not run", async () => {
  const { publishRaw, handled, events, stopPrisma } = await setUp();
  try {
    await publishRaw("contract.placed", { id: "p2", total: "many" });
    await publishRaw("contract.paid", { id: 7 });
    await publishRaw("contract.shipped", { id: "bad-2" });
    await publishRaw("contract.placed", { id: "p3", total: 2 }); // a valid one still goes through
    await expect
      .poll(async () => (await rows()).map((r) => r.status).sort(), { timeout: 20_000 })
      .toEqual(["dead", "dead", "dead", "processed"]);
    const dead = (await rows()).filter((r) => r.status === "dead");
    // Dead on the first attempt: no retry makes a payload valid.
    expect(dead.map((r) => r.attempts)).toEqual([1, 1, 1]);
    // By handler: two receive batches in flight may store the deliveries' rows in either order.
    const reason = Object.fromEntries(dead.map((r) => [r.handler, r.last_error]));
    expect(Object.keys(reason).sort()).toEqual(["paid", "placed", "shipped"]);
    expect(reason.placed).toMatch(/^OutboxSchemaError: The payload received for "contract\.placed".*\$\.total: /);
    expect(reason.paid).toMatch(/\$\.id: .*\$\.cents: /);
    expect(reason.shipped).toMatch(/refused by an async check/);
    expect(handled).toEqual(["p3"]);
    expect((await effects()).map((e) => e.handler)).toEqual(["placed"]);
    // Emitted once the dead mark is committed, a moment after the rows read dead.
    await expect.poll(() => events.filter((e) => e.type === "dead-lettered").length, { timeout: 10_000 }).toBe(3);
  } finally {
    await stopPrisma();
  }
});

// The inbox against the real PostgreSQL and RabbitMQ: stored before the ack, deduplicated by message id, handled once
// in the handler's own Prisma transaction, retried, dead, invalid input, retention, and start/stop.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type InboxEvent, type InboxOptions, inbox, OutboxConfigError, outbox } from "../../src/index.js";
import { guardHeaderDecoding } from "../../src/transport/amqp/header-guard.js";
import { uniqueName } from "../support/consumer.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { nestedHeaderTable, publishRawHeaders } from "../support/raw-headers.js";
import { until } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl).$extends(outbox({ exchange: "next", queue: false }));
const { connection, channel, track, defer, exchangeAndQueue } = await useInboxBroker(amqpUrl);

type Messages = { "order.created": { n: number; fail?: boolean; slow?: boolean } };

/** A fresh exchange + queue pair and an inbox on it; the handler writes one Effect row per handling. */
async function setUp({ queue: queueOptions, ...options }: Partial<InboxOptions<Messages, typeof prisma, any>> = {}) {
  const { exchange, queue } = await exchangeAndQueue("inbox", queueOptions?.name);
  const events: InboxEvent[] = [];
  const box = inbox<Messages, typeof prisma>({
    prisma,
    queue: { ...queueOptions, name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: {
      effect: {
        on: "order.created",
        handle: async (message, tx) => {
          await recordEffect(tx, message, "effect");
          if (message.payload.fail) throw new Error(`failing on purpose (${message.payload.n})`);
        },
      },
    },
    sweepIntervalMs: 100,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 50,
    logger: quiet,
    ...options,
  });
  box.onEvent((e) => events.push(e));
  track(box);
  const publish = (routingKey: string, body: unknown, props: amqp.Options.Publish = {}) =>
    channel.publish(exchange, routingKey, Buffer.from(typeof body === "string" ? body : JSON.stringify(body)), {
      messageId: randomUUID(),
      ...props,
    });
  return { box, exchange, queue, events, publish };
}

async function effects(): Promise<Array<{ messageId: string; handler: string }>> {
  return (await pool.query('SELECT "messageId", handler FROM "Effect" ORDER BY id')).rows;
}
async function inboxRows(): Promise<
  Array<{
    message_id: string;
    handler: string;
    status: string;
    attempts: number;
    last_error: string | null;
    payload: unknown;
    body: Buffer | null;
  }>
> {
  return (
    await pool.query(
      "SELECT message_id, handler, status, attempts, last_error, payload, body FROM inbox_message ORDER BY id",
    )
  ).rows;
}
async function queueDepth(queue: string): Promise<number> {
  return (await channel.checkQueue(queue)).messageCount;
}

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect", outbox_message RESTART IDENTITY');
});
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

describe("receive and handle", () => {
  it("stores, acks and handles every message once, through the in-process hand-off", async () => {
    // The sweeper is off (1 min): only the hand-off from the receiver can get these handled in time.
    const { box, queue, publish } = await setUp({ sweepIntervalMs: 60_000 });
    await box.start({ databaseUrl, amqpUrl });
    const ids = Array.from({ length: 300 }, (_, n) => {
      const id = randomUUID();
      publish("order.created", { n }, { messageId: id });
      return id;
    });
    await channel.waitForConfirms();
    await until(async () => (await effects()).length >= 300);
    expect((await effects()).map((e) => e.messageId).sort()).toEqual([...ids].sort());
    const rows = await inboxRows();
    expect(rows.every((r) => r.status === "processed" && r.attempts === 1)).toBe(true);
    expect(await queueDepth(queue)).toBe(0);
  });

  it("a message delivered three times is handled once (duplicates acked and dropped)", async () => {
    const { box, queue, publish, events } = await setUp();
    await box.start({ databaseUrl, amqpUrl });
    const ids = Array.from({ length: 50 }, () => randomUUID());
    for (let copy = 0; copy < 3; copy++)
      for (const [n, id] of ids.entries()) publish("order.created", { n }, { messageId: id });
    await channel.waitForConfirms();
    // The copies can be several batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES), and a batch is
    // counted (its "received" event) once acked, after the batch before it: every delivery is waited for there too.
    const counted = () => events.reduce((n, e) => n + (e.type === "received" ? e.deliveries : 0), 0);
    await until(async () => (await queueDepth(queue)) === 0 && (await effects()).length >= 50 && counted() === 150);
    await new Promise((r) => setTimeout(r, 300));
    expect((await effects()).length).toBe(50);
    expect((await inboxRows()).length).toBe(50);
    const received = events.filter((e): e is Extract<InboxEvent, { type: "received" }> => e.type === "received");
    expect(received.reduce((s, e) => s + e.deliveries, 0)).toBe(150);
    expect(received.reduce((s, e) => s + e.stored, 0)).toBe(50);
  });

  it("a handler that throws rolls back its writes, is retried with backoff, and is dead after maxAttempts; others flow", async () => {
    const { box, publish, events } = await setUp({ maxAttempts: 3 });
    await box.start({ databaseUrl, amqpUrl });
    const poison = randomUUID();
    publish("order.created", { n: 0, fail: true }, { messageId: poison });
    for (let n = 1; n <= 20; n++) publish("order.created", { n });
    await channel.waitForConfirms();
    await until(async () => (await inboxRows()).some((r) => r.status === "dead"));
    await until(async () => (await effects()).length >= 20);
    const rows = await inboxRows();
    const dead = rows.find((r) => r.message_id === poison);
    expect(dead).toMatchObject({ status: "dead", attempts: 3 });
    expect(dead?.last_error).toMatch(/failing on purpose \(0\)/);
    // The poison's effect rows were rolled back each time; the 20 others happened once each.
    expect((await effects()).filter((e) => e.messageId === poison)).toEqual([]);
    expect((await effects()).length).toBe(20);
    expect(events.filter((e) => e.type === "retry-scheduled")).toHaveLength(2);
    expect(events.filter((e) => e.type === "dead")).toHaveLength(1);
  });

  it("several handlers for one message: each stored, handled and retried on its own", async () => {
    let auditCalls = 0;
    let flakyCalls = 0;
    const { box, publish } = await setUp({
      handlers: {
        audit: {
          pattern: "order.*",
          handle: async (m, tx) => {
            auditCalls++;
            await tx.effect.create({ data: { messageId: m.messageId, handler: "audit" } });
          },
        },
        flaky: {
          type: "OrderCreated",
          handle: async (m, tx) => {
            flakyCalls++;
            await tx.effect.create({ data: { messageId: m.messageId, handler: "flaky" } });
            if (m.attempt < 3) throw new Error("not yet");
          },
        },
      },
    });
    await box.start({ databaseUrl, amqpUrl });
    const id = randomUUID();
    publish("order.created", { n: 1 }, { messageId: id, type: "OrderCreated" });
    await until(async () => {
      const rows = await inboxRows();
      return rows.length === 2 && rows.every((r) => r.status === "processed");
    });
    expect(auditCalls).toBe(1);
    expect(flakyCalls).toBe(3);
    expect(await effects()).toEqual([
      { messageId: id, handler: "audit" },
      { messageId: id, handler: "flaky" },
    ]);
  });

  it("a handler that never settles is bounded by handlerTimeoutMs: its signal aborts and its writes roll back", async () => {
    const aborted: boolean[] = [];
    const { box, publish } = await setUp({
      handlerTimeoutMs: 200,
      maxAttempts: 2,
      handlers: {
        hang: {
          on: "order.created",
          handle: async (m, tx, { signal }) => {
            await tx.effect.create({ data: { messageId: m.messageId, handler: "hang" } });
            signal.addEventListener("abort", () => aborted.push(true));
            await new Promise(() => {});
          },
        },
      },
    });
    await box.start({ databaseUrl, amqpUrl });
    publish("order.created", { n: 1 });
    await until(async () => (await inboxRows())[0]?.status === "dead");
    expect((await inboxRows())[0]?.last_error).toMatch(/InboxHandlerTimeoutError: handler "hang" ran past 200 ms/);
    expect(aborted).toEqual([true, true]);
    expect(await effects()).toEqual([]);
  });

  it("tx.$enqueue in a handler commits with the handling (consume-transform-produce), and rolls back with it", async () => {
    const { box, publish } = await setUp({
      maxAttempts: 1,
      handlers: {
        forward: {
          on: "order.created",
          handle: async (m, tx) => {
            await tx.$enqueue({ routingKey: "invoice.requested", payload: { from: m.messageId } });
            if (m.payload.fail) throw new Error("no");
          },
        },
      },
    });
    await box.start({ databaseUrl, amqpUrl });
    const ok = randomUUID();
    publish("order.created", { n: 1 }, { messageId: ok });
    publish("order.created", { n: 2, fail: true });
    await until(async () => {
      const rows = await inboxRows();
      return rows.length === 2 && rows.every((r) => r.status !== "pending");
    });
    const { rows } = await pool.query("SELECT routing_key, payload FROM outbox_message");
    expect(rows).toEqual([{ routing_key: "invoice.requested", payload: { from: ok } }]);
  });

  it("rows a crash left pending are found by the sweeper", async () => {
    const { box } = await setUp();
    const id = randomUUID();
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload) VALUES ($1, 'effect', 'x', 'order.created', '{"n":7}')`,
      [id],
    );
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => (await effects()).length === 1);
    expect((await effects())[0]?.messageId).toBe(id);
  });

  it("consumes a quorum queue with a dead-letter exchange", async () => {
    const { box, publish } = await setUp({
      queue: {
        name: uniqueName("inbox.quorum"),
        arguments: { "x-queue-type": "quorum", "x-dead-letter-exchange": "amq.fanout" },
      },
    });
    await box.start({ databaseUrl, amqpUrl });
    publish("order.created", { n: 1 });
    await until(async () => (await effects()).length === 1);
  });
});

describe("invalid input", () => {
  it("no messageId, a body that is not JSON, no handler: stored as dead with the reason (default), never lost", async () => {
    const { box, queue, publish } = await setUp();
    await box.start({ databaseUrl, amqpUrl });
    publish("order.created", { n: 1 }, { messageId: undefined as never });
    publish("order.created", "not json {", { messageId: "m-not-json" });
    publish("nobody.listens", { n: 3 }, { messageId: "m-no-handler", type: "Other" });
    await until(async () => (await inboxRows()).length === 3 && (await queueDepth(queue)) === 0);
    // In the order published: the receiver may have two INSERTs in flight, so ids need not follow delivery order
    // for unkeyed messages (docs/ordering.md); each row is found by its message id.
    const all = await inboxRows();
    const rows = [null, "m-not-json", "m-no-handler"].map((id) => all.find((r) => r.message_id === id));
    expect(rows.map((r) => [r?.message_id, r?.handler, r?.status])).toEqual([
      [null, "", "dead"],
      ["m-not-json", "", "dead"],
      ["m-no-handler", "", "dead"],
    ]);
    expect(rows[0]?.last_error).toMatch(/no messageId/);
    expect(rows[1]?.last_error).toMatch(/not JSON/);
    expect(rows[1]?.body?.toString()).toBe("not json {");
    expect(rows[2]?.last_error).toMatch(/no handler takes routing key "nobody.listens" or type "Other"/);
    expect(await effects()).toEqual([]);
  });

  it('invalidMessages: "reject" sends them to the queue\'s dead-letter exchange', async () => {
    const dlx = uniqueName("inbox.dlx");
    await channel.assertExchange(dlx, "fanout", { durable: false });
    const { queue: parked } = await channel.assertQueue("", { exclusive: true });
    await channel.bindQueue(parked, dlx, "");
    defer(() => channel.deleteExchange(dlx));
    const { box, publish } = await setUp({
      invalidMessages: "reject",
      queue: { name: uniqueName("inbox.q"), arguments: { "x-dead-letter-exchange": dlx } },
    });
    await box.start({ databaseUrl, amqpUrl });
    publish("order.created", "not json", { messageId: "bad-1" });
    publish("order.created", { n: 1 });
    await until(async () => (await queueDepth(parked)) === 1 && (await effects()).length === 1);
    expect(await inboxRows()).toHaveLength(1);
  });
});

describe("a header table amqplib cannot decode (nested 9,000 deep: its recursive decoder overflows the stack)", () => {
  /** The poison, then three good messages, waiting in the queue before the inbox starts: the poison comes first. */
  async function poisonFirst(exchange: string, queue: string, args: Record<string, unknown> = {}) {
    await channel.assertQueue(queue, { durable: true, arguments: args });
    await channel.bindQueue(queue, exchange, "#");
    const raw = await connection.createChannel();
    const table = nestedHeaderTable(9_000);
    expect(table.length).toBe(63_000); // inside RabbitMQ's frame_max (128 KiB)
    await publishRawHeaders(connection, raw, exchange, "order.created", table, "poison-1", Buffer.from('{"n":0}'));
    await raw.close();
    const good = [1, 2, 3].map((n) => ({ n, id: `good-${n}` }));
    for (const { n, id } of good)
      channel.publish(exchange, "order.created", Buffer.from(JSON.stringify({ n })), { messageId: id });
    await channel.waitForConfirms();
    return good.map((g) => g.id);
  }

  it("is stored as dead with the reason (headers dropped, body kept); the connection stays up; the rest are handled", async () => {
    const { box, exchange, queue, events } = await setUp();
    const good = await poisonFirst(exchange, queue);
    await box.start({ databaseUrl, amqpUrl });
    // The poison and the good ones can be two batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES): the
    // good ones may be handled before the poison's row commits, so its row is waited for too.
    await until(
      async () =>
        (await effects()).length === 3 &&
        (await queueDepth(queue)) === 0 &&
        (await inboxRows()).some((r) => r.message_id === "poison-1"),
    );
    expect((await effects()).map((e) => e.messageId).sort()).toEqual(good);
    const poison = (await inboxRows()).find((r) => r.message_id === "poison-1");
    expect(poison).toMatchObject({
      handler: "",
      status: "dead",
      last_error: expect.stringMatching(/nested too deeply/),
    });
    expect(poison?.body).toBeNull(); // the body was JSON: kept as the payload
    expect(poison?.payload).toEqual({ n: 0 });
    const { rows } = await pool.query("SELECT headers FROM inbox_message WHERE message_id = 'poison-1'");
    expect(rows[0].headers).toBeNull();
    expect(events.filter((e) => e.type === "transport" && e.event.type === "disconnected")).toEqual([]);
    expect(events.filter((e) => e.type === "invalid")).toEqual([
      expect.objectContaining({ messageId: "poison-1", outcome: "dead", reason: expect.stringMatching(/nested/) }),
    ]);
  });

  it('invalidMessages: "reject": the inbox rejects it to the dead-letter exchange itself; the rest are handled', async () => {
    const dlx = uniqueName("inbox.dlx");
    await channel.assertExchange(dlx, "fanout", { durable: false });
    const { queue: parked } = await channel.assertQueue("", { exclusive: true });
    await channel.bindQueue(parked, dlx, "");
    defer(() => channel.deleteExchange(dlx));
    const args = { "x-dead-letter-exchange": dlx };
    const { box, exchange, queue, events } = await setUp({
      invalidMessages: "reject",
      queue: { name: uniqueName("inbox.q"), arguments: args },
    });
    await poisonFirst(exchange, queue, args);
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => (await queueDepth(parked)) === 1 && (await effects()).length === 3);
    expect((await inboxRows()).map((r) => r.message_id).sort()).toEqual(["good-1", "good-2", "good-3"]);
    expect(events.filter((e) => e.type === "transport" && e.event.type === "disconnected")).toEqual([]);
  });

  // Without the guard (an amqplib it does not know) every delivery of the poison drops the connection; the broker
  // counts each drop as a delivery of what was in flight, and past x-delivery-limit dead-letters it.
  it.each([
    { prefetch: 1, dead: ["poison-1"], handled: ["good-1", "good-2", "good-3"] },
    // The deliveries in flight with the poison share its count and its fate: dead-lettered with it, never lost.
    { prefetch: 1_000, dead: ["good-1", "good-2", "good-3", "poison-1"], handled: [] },
  ])(
    "without the guard, the broker-side defence (quorum queue, x-delivery-limit, dead-letter exchange) ends the loop; prefetch $prefetch",
    async ({ prefetch, dead, handled }) => {
      const dlx = uniqueName("inbox.dlx");
      await channel.assertExchange(dlx, "fanout", { durable: false });
      // Not exclusive: a second (guarded) connection reads it.
      const parked = uniqueName("inbox.parked");
      await channel.assertQueue(parked, { durable: false });
      defer(() => channel.deleteQueue(parked));
      await channel.bindQueue(parked, dlx, "");
      defer(() => channel.deleteExchange(dlx));
      // The inbox's queue arguments (docs/inbox.md#poison-header-tables), asserted by the inbox itself at start.
      const args = { "x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": dlx };
      const { box, exchange, queue, events, publish } = await setUp({
        queue: { name: uniqueName("inbox.quorum"), arguments: args },
        prefetch,
        guardHeaders: false,
      } as never);
      await poisonFirst(exchange, queue, args);
      await box.start({ databaseUrl, amqpUrl });
      await until(
        async () => (await queueDepth(parked)) === dead.length && (await effects()).length === handled.length,
      );
      // Read with the guard: the poison would drop an unguarded reader's connection as well.
      const reader = await amqp.connect(amqpUrl);
      guardHeaderDecoding(reader);
      const readerChannel = await reader.createChannel();
      const parkedIds: string[] = [];
      for (let m = await readerChannel.get(parked); m; m = await readerChannel.get(parked)) {
        parkedIds.push(String(m.properties.messageId));
      }
      await reader.close();
      expect(parkedIds.sort()).toEqual(dead);
      // Delivered 1 + x-delivery-limit times, each time dropping the connection: a loop, detected, then over.
      expect(events.filter((e) => e.type === "decode-failure")).toHaveLength(3);
      expect(events.filter((e) => e.type === "decode-loop")).toHaveLength(1);
      // The consumer is steady again: what comes next is handled.
      publish("order.created", { n: 4 }, { messageId: "after" });
      await until(async () => (await effects()).length === handled.length + 1);
      expect((await effects()).map((e) => e.messageId).sort()).toEqual([...handled, "after"].sort());
      expect(await queueDepth(queue)).toBe(0);
    },
  );
});

describe("retention", () => {
  it("deletes processed rows past the window in small batches, never pending or dead ones", async () => {
    const { box, events } = await setUp({ retentionMs: 60_000, purgeIntervalMs: 100, purgeBatchSize: 7 });
    await pool.query(`
      INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, status, processed_at, available_at)
      SELECT 'old-' || n, 'effect', 'x', 'k', '{}', 'processed', now() - interval '2 minutes', now() + interval '1 hour'
      FROM generate_series(1, 30) n`);
    await pool.query(`
      INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, status, processed_at)
      VALUES ('recent', 'effect', 'x', 'k', '{}', 'processed', now()),
             ('dead', 'effect', 'x', 'k', '{}', 'dead', NULL)`);
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => (await inboxRows()).length === 2);
    expect((await inboxRows()).map((r) => r.message_id)).toEqual(["recent", "dead"]);
    const purged = events.filter((e): e is Extract<InboxEvent, { type: "purged" }> => e.type === "purged");
    expect(purged.reduce((s, e) => s + e.count, 0)).toBe(30);
  });
});

describe("retention, whatever the rows' age", () => {
  it("deletes only processed rows: pending and dead rows received and stamped long before the window stay", async () => {
    const { box, events } = await setUp({ retentionMs: 60_000, purgeIntervalMs: 100, purgeBatchSize: 7 });
    // Every timestamp two hours past the window; only the status tells them apart.
    await pool.query(`
      INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, status, attempts, received_at,
                                 processed_at, available_at)
      SELECT s || '-' || n, 'effect', 'x', 'k', '{}', s, 1, now() - interval '2 hours', now() - interval '2 hours',
             now() + interval '1 hour'
      FROM unnest(ARRAY['processed', 'pending', 'dead']) s, generate_series(1, 10) n`);
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => (await inboxRows()).length === 20);
    await new Promise((r) => setTimeout(r, 300)); // a few more purges
    const left = await inboxRows();
    expect(left.filter((r) => r.status === "pending")).toHaveLength(10);
    expect(left.filter((r) => r.status === "dead")).toHaveLength(10);
    expect(left.filter((r) => r.status === "processed")).toEqual([]);
    const purged = events.filter((e): e is Extract<InboxEvent, { type: "purged" }> => e.type === "purged");
    expect(purged.reduce((s, e) => s + e.count, 0)).toBe(10);
  });
});

describe("start and stop", () => {
  it("a missing inbox table fails start() with what to run, and leaves nothing running", async () => {
    const db = await import("../support/database.js");
    const bare = await db.createTestDatabase(inject("databaseUrl"), "template1");
    defer(() => bare.drop());
    const { box } = await setUp();
    await expect(box.start({ databaseUrl: bare.url, amqpUrl })).rejects.toThrow(
      /inbox_message does not exist.*inbox\.prisma/,
    );
  });

  it("bad RabbitMQ credentials fail start() with a clear error and no password in it", async () => {
    const { box } = await setUp();
    const bad = amqpUrl.replace(/\/\/([^:]+):([^@]+)@/, "//$1:wrong-secret@");
    const error = await box.start({ databaseUrl, amqpUrl: bad }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxConfigError);
    expect(String(error)).not.toContain("wrong-secret");
  });

  it("start() and stop() are idempotent; stop() waits for handlers in flight", async () => {
    let finished = 0;
    const { box, publish } = await setUp({
      handlers: {
        slow: {
          on: "order.created",
          handle: async (m, tx) => {
            await new Promise((r) => setTimeout(r, 300));
            await tx.effect.create({ data: { messageId: m.messageId, handler: "slow" } });
            finished++;
          },
        },
      },
    });
    await Promise.all([box.start({ databaseUrl, amqpUrl }), box.start({ databaseUrl, amqpUrl })]);
    publish("order.created", { n: 1 });
    await until(async () => (await inboxRows()).length === 1);
    await new Promise((r) => setTimeout(r, 50));
    await Promise.all([box.stop(), box.stop()]);
    expect(finished).toBe(1);
    expect((await inboxRows())[0]?.status).toBe("processed");
  });

  it("a claim leases its row for handlerTimeoutMs + leaseMarginMs", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { box } = await setUp({
      handlerTimeoutMs: 1_000,
      leaseMarginMs: 2_000,
      handlers: { held: { on: "order.created", handle: () => gate } },
    });
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload) VALUES ($1, 'held', 'x', 'order.created', '{"n":1}')`,
      [randomUUID()],
    );
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => (await inboxRows())[0]?.attempts === 1);
    // Claimed just now with a 3 s lease (the default margin would give 16 s).
    const { rows } = await pool.query<{ left: number }>(
      "SELECT extract(epoch FROM available_at - now())::float8 AS left FROM inbox_message",
    );
    expect(rows[0]!.left).toBeGreaterThan(1.5);
    expect(rows[0]!.left).toBeLessThanOrEqual(3);
    release();
  });

  it("an attempt whose lease was taken over meanwhile rolls back its writes: the row is not marked processed", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let runs = 0;
    const warnings: string[] = [];
    const { box } = await setUp({
      logger: { ...quiet, warn: (message: string) => void warnings.push(message) },
      handlers: {
        held: {
          on: "order.created",
          handle: async (m, tx) => {
            runs++;
            await tx.effect.create({ data: { messageId: m.messageId, handler: "held" } });
            await gate;
          },
        },
      },
    });
    const id = randomUUID();
    await pool.query(
      `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload) VALUES ($1, 'held', 'x', 'order.created', '{"n":1}')`,
      [id],
    );
    await box.start({ databaseUrl, amqpUrl });
    await until(async () => runs === 1);
    // Another processor's claim, as after this lease ran out: its attempt, its lease (far off, so nothing re-claims).
    await pool.query("UPDATE inbox_message SET attempts = attempts + 1, available_at = now() + interval '1 hour'");
    release();
    await until(async () => warnings.some((w) => w.includes("taken over by another processor")));
    expect(await inboxRows()).toMatchObject([{ message_id: id, status: "pending", attempts: 2 }]);
    expect(await effects()).toEqual([]);
  });

  it("stop() gives back rows claimed ahead but not started: their attempt taken back, due at once", async () => {
    // concurrency 1: one row in its handler (held until stop), the next ones claimed ahead into the buffer.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const started: string[] = [];
    const { box } = await setUp({
      concurrency: 1,
      handlers: {
        held: {
          on: "order.created",
          handle: async (m, tx) => {
            started.push(m.messageId);
            await gate;
            await tx.effect.create({ data: { messageId: m.messageId, handler: "held" } });
          },
        },
      },
    });
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of ids) {
      await pool.query(
        `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload) VALUES ($1, 'held', 'x', 'order.created', '{"n":1}')`,
        [id],
      );
    }
    await box.start({ databaseUrl, amqpUrl });
    // The first row runs; the second is claimed ahead (attempts 1, leased) while the handler holds the only slot.
    await until(async () => (await inboxRows()).filter((r) => r.attempts === 1).length === 2);
    const stopped = box.stop();
    release();
    await stopped;
    expect(started).toHaveLength(1);
    const rows = (
      await pool.query<{ message_id: string; status: string; attempts: number; due: boolean }>(
        "SELECT message_id, status, attempts, available_at <= now() AS due FROM inbox_message ORDER BY id",
      )
    ).rows;
    expect(rows.find((r) => r.message_id === started[0])?.status).toBe("processed");
    const others = rows.filter((r) => r.message_id !== started[0]);
    expect(others).toHaveLength(2);
    expect(others.every((r) => r.status === "pending" && r.attempts === 0 && r.due)).toBe(true);
    expect((await effects()).map((e) => e.messageId)).toEqual([started[0]]);
  });
});

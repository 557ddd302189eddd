import amqp from "amqplib";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createRelay,
  OutboxConfigError,
  OutboxNackError,
  OutboxQueue,
  outbox,
  type RelayEvent,
} from "../../src/index.js";
import { outboxNames } from "../../src/sql/names.js";
import { type ClaimedRow, claimNext, keyOf } from "../../src/sql/outbox/claim.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { createTestDatabase } from "../support/database.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { outboxCount as countOutbox } from "../support/tables.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const { relay, defer } = useTestRelays({ databaseUrl: url, amqpUrl, queue: false, sweepIntervalMs: 200 });
async function consumer(exchange = uniqueName("relay")) {
  const c = await startCountingConsumer(amqpUrl, exchange);
  defer(() => c.close());
  return c;
}
const outboxCount = () => countOutbox(pool);
const deadLetters = async () =>
  (await pool.query("SELECT message_id::text, attempts, last_error, routing_key FROM outbox_dead_letter")).rows;

beforeEach(async () => {
  await pool.query('TRUNCATE outbox_message, outbox_dead_letter, "Order", "Customer" RESTART IDENTITY CASCADE');
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe("relay", () => {
  it("embedded in the app: declared events reach RabbitMQ with their properties, and rows are deleted", async () => {
    const c = await consumer();
    const queue = new OutboxQueue();
    const prisma = base.$extends(
      outbox<typeof base>({ exchange: c.exchange, queue, events: { Order: { create: true } } }),
    );
    const r = relay({ queue, listen: false, sweepIntervalMs: 60_000 });
    await r.start();
    const order = await prisma.order.create({ data: { number: "E-1", amount: 42 } });
    const [extra] = await prisma.$enqueue({
      routingKey: "note.added",
      payload: { text: "hi" },
      headers: { tenant: "t1" },
      type: "note",
      correlationId: "corr-1",
    });
    await c.waitForDistinct(2, 10_000);
    const created = c.arrivals.find((a) => a.routingKey === "order.created")!;
    expect(JSON.parse(created.body)).toEqual(order);
    const note = c.arrivals.find((a) => a.routingKey === "note.added")!;
    expect(note.messageId).toBe(extra);
    expect(note.properties).toMatchObject({
      contentType: "application/json",
      type: "note",
      correlationId: "corr-1",
      deliveryMode: 2,
      headers: { tenant: "t1" },
    });
    expect(typeof note.properties.timestamp).toBe("number");
    await expect.poll(outboxCount).toBe(0);
    expect(r.stats().published).toBe(2);
  });

  it("three relays on 10,000 messages: every message arrives once", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const rs = [relay({ batchSize: 200 }), relay({ batchSize: 200 }), relay({ batchSize: 200 })];
    await Promise.all(rs.map((r) => r.start()));
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push(
        ...(await prisma.$enqueue(Array.from({ length: 500 }, (_, j) => ({ routingKey: "bulk", payload: { i, j } })))),
      );
    }
    await c.waitForDistinct(10_000, 60_000);
    expect(c.duplicates).toBe(0);
    expect([...c.counts.keys()].sort()).toEqual(ids.sort());
    await expect.poll(outboxCount).toBe(0);
    // The work was shared: each relay published some of it.
    expect(rs.every((r) => r.stats().published > 0)).toBe(true);
  });

  it("an unroutable message is retried, then dead-lettered with its error, while the rest flow", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    // The consumer binds only "ok.#": "nowhere" has no route.
    await c.close();
    const bound = await startCountingConsumer(amqpUrl, c.exchange, "ok.#");
    defer(() => bound.close());
    const r = relay({ maxAttempts: 3, retryBaseDelayMs: 20, retryMaxDelayMs: 50, sweepMinAgeMs: 0 });
    const events: string[] = [];
    r.onEvent((e) => events.push(e.type));
    await r.start();
    const [poison] = await prisma.$enqueue({ routingKey: "nowhere", payload: 1 });
    await prisma.$enqueue(Array.from({ length: 50 }, (_, i) => ({ routingKey: `ok.${i}`, payload: i })));
    await bound.waitForDistinct(50, 10_000);
    await expect.poll(deadLetters, { timeout: 10_000 }).toHaveLength(1);
    const [dead] = await deadLetters();
    expect(dead).toMatchObject({ message_id: poison, attempts: 3, routing_key: "nowhere" });
    expect(dead.last_error).toMatch(/unroutable|NO_ROUTE/i);
    expect(await outboxCount()).toBe(0);
    expect(events.filter((e) => e === "retry-scheduled")).toHaveLength(2);
    expect(r.stats().deadLettered).toBe(1);
  });

  it("a nack from one of two bound queues (full, reject-publish): counted, logged, retried, dead-lettered saying others may have it", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createChannel();
    const full = uniqueName("relay.full");
    defer(async () => {
      await channel.deleteQueue(full);
      await connection.close();
    });
    await channel.assertQueue(full, { arguments: { "x-max-length": 1, "x-overflow": "reject-publish" } });
    await channel.bindQueue(full, c.exchange, "#");
    const warnings: Array<{ message: string; fields: unknown }> = [];
    const r = relay({
      maxAttempts: 3,
      retryBaseDelayMs: 20,
      retryMaxDelayMs: 50,
      sweepMinAgeMs: 0,
      logger: { info() {}, warn: (message, fields) => void warnings.push({ message, fields }), error() {} },
    });
    const events: RelayEvent[] = [];
    r.onEvent((e) => events.push(e));
    await r.start();
    const [accepted] = await prisma.$enqueue({ routingKey: "a", payload: 1 });
    await c.waitForDistinct(1, 10_000);
    const [refused] = await prisma.$enqueue({ routingKey: "b", payload: 2 });
    await expect.poll(deadLetters, { timeout: 10_000 }).toHaveLength(1);
    const [dead] = await deadLetters();
    expect(dead).toMatchObject({ message_id: refused, attempts: 3 });
    expect(dead.last_error).toMatch(/broker nacked message .*other queues bound to the exchange may already have it/);
    // The healthy queue got the refused message once per attempt; the full queue kept the first one only.
    await expect.poll(() => c.counts.get(refused!)).toBe(3);
    expect(c.counts.get(accepted!)).toBe(1);
    expect((await channel.checkQueue(full)).messageCount).toBe(1);
    const refusals = events.filter((e) => e.type === "retry-scheduled" || e.type === "dead-lettered");
    expect(refusals).toHaveLength(3);
    for (const e of refusals) expect((e as { error: Error }).error).toBeInstanceOf(OutboxNackError);
    expect(r.stats()).toMatchObject({ nacked: 3, retried: 2, deadLettered: 1 });
    const nackLogs = warnings.filter((w) => w.message.includes("the broker nacked messages"));
    expect(nackLogs.map((w) => (w.fields as { nacked: number }).nacked)).toEqual([1, 1, 1]);
  });

  it("the sweeper publishes what the fast path missed", async () => {
    const c = await consumer();
    // Written with no in-process queue and seen by a relay that does not LISTEN: only the sweeper can find them.
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    await prisma.$enqueue(Array.from({ length: 30 }, (_, i) => ({ routingKey: "late", payload: i })));
    const r = relay({ listen: false, sweepIntervalMs: 100, sweepMinAgeMs: 300 });
    const paths = new Set<string>();
    r.onEvent((e) => e.type === "published" && paths.add(e.path));
    await r.start();
    await c.waitForDistinct(30, 10_000);
    expect(c.duplicates).toBe(0);
    // start() drains what is due at once; write more after it, so that only the sweeper can take them.
    await prisma.$enqueue(Array.from({ length: 10 }, (_, i) => ({ routingKey: "later", payload: i })));
    await c.waitForDistinct(40, 10_000);
    // The consumer sees a message before the relay's COMMIT, and "published" is emitted after it.
    await expect.poll(() => paths.has("sweep")).toBe(true);
    expect(c.duplicates).toBe(0);
  });

  it("a message with availableAt in the future waits for it, then the sweeper publishes it", async () => {
    const c = await consumer();
    const queue = new OutboxQueue();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue }));
    const r = relay({ queue, sweepIntervalMs: 100, sweepMinAgeMs: 0 });
    await r.start();
    const at = new Date(Date.now() + 1_500);
    const [later] = await prisma.$enqueue({ routingKey: "later", payload: 1, availableAt: at });
    const [now] = await prisma.$enqueue({ routingKey: "now", payload: 2 });
    await c.waitForDistinct(1, 5_000);
    expect([...c.counts.keys()]).toEqual([now]);
    await c.waitForDistinct(2, 10_000);
    const arrived = c.arrivals.find((a) => a.messageId === later)!;
    expect(arrived.at).toBeGreaterThanOrEqual(at.getTime() - 20); // clocks of PostgreSQL and Node are the same host's
  });

  it("rows due before 1970 are claimed: the keyset position after them is a negative epoch", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    // Batches of 2 come back full, so the next claim starts after the last row's (available_at, id).
    const ids = await prisma.$enqueue(
      Array.from({ length: 40 }, (_, i) => ({
        routingKey: "old",
        payload: i,
        availableAt: new Date(Date.UTC(1969, 11, 31, 23, 59, i)),
      })),
    );
    // The keyset claim itself, after the second row (negative epoch milliseconds), takes the third and fourth.
    const names = outboxNames();
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const byTime = (a: ClaimedRow, b: ClaimedRow) => a.available_at - b.available_at;
      const first = (await client.query<ClaimedRow>(claimNext(names, 2))).rows.sort(byTime);
      expect(first[1]!.available_at).toBeLessThan(0);
      const next = (await client.query<ClaimedRow>(claimNext(names, 2, keyOf(first[1]!)))).rows.sort(byTime);
      expect(next.map((row) => row.message_id)).toEqual(ids.slice(2, 4));
    } finally {
      await client.query("ROLLBACK");
      client.release();
    }
    const r = relay({ listen: false, batchSize: 2, sweepIntervalMs: 100 });
    const failures: string[] = [];
    r.onEvent((e) => e.type === "batch-failed" && failures.push(String(e.error)));
    await r.start();
    // 20 full claims in a row: a position that fails after each would leave one claim a second (RESCAN_MS).
    await c.waitForDistinct(ids.length, 5_000);
    expect(c.duplicates).toBe(0);
    expect(failures).toEqual([]);
    await expect.poll(outboxCount).toBe(0);
  });

  it("a header x-ordering-key written around the writer (raw SQL) is not sent: the ordering key comes from the key column only", async () => {
    const c = await consumer();
    await pool.query(
      `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, headers, ordering_key)
       VALUES (gen_random_uuid(), $1, 'spoof', '1', '{"x-ordering-key":"spoofed","tenant":"t1"}', NULL),
              (gen_random_uuid(), $1, 'keyed', '2', '{"X-Ordering-Key":"spoofed"}', 'real')`,
      [c.exchange],
    );
    const r = relay({ listen: false, sweepIntervalMs: 100, sweepMinAgeMs: 0 });
    await r.start();
    await c.waitForDistinct(2, 10_000);
    const spoof = c.arrivals.find((a) => a.routingKey === "spoof")!;
    expect(spoof.properties.headers).toEqual({ tenant: "t1" });
    const keyed = c.arrivals.find((a) => a.routingKey === "keyed")!;
    expect(keyed.properties.headers).toEqual({ "x-ordering-key": "real" });
  });

  it("graceful stop mid-batch loses nothing: a second relay delivers the rest", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    for (let i = 0; i < 10; i++) {
      await prisma.$enqueue(Array.from({ length: 500 }, (_, j) => ({ routingKey: "s", payload: { i, j } })));
    }
    const first = relay({ batchSize: 100, concurrency: 1 });
    await first.start();
    await c.waitForDistinct(300, 10_000);
    await first.stop();
    expect(first.state).toBe("stopped");
    const left = await outboxCount();
    expect(left).toBeGreaterThan(0);
    // Everything not in the outbox any more was published (the stop finished its batch instead of dropping it).
    await expect.poll(() => c.distinct).toBe(5_000 - left);
    const second = relay({ batchSize: 100 });
    await second.start();
    await c.waitForDistinct(5_000, 30_000);
    expect(c.duplicates).toBe(0);
  });

  it("start() on a database without the outbox table fails with what to do", async () => {
    const empty = await createTestDatabase(inject("databaseUrl"), "template0");
    defer(() => empty.drop());
    const r = createRelay({ databaseUrl: empty.url, amqpUrl, queue: false });
    await expect(r.start()).rejects.toThrow(/outbox_message does not exist.*prisma migrate/);
    expect(r.state).toBe("stopped");
  });

  it("start() and stop() are idempotent", async () => {
    const r = relay({ listen: true });
    await Promise.all([r.start(), r.start()]);
    expect(r.state).toBe("running");
    await Promise.all([r.stop(), r.stop()]);
    expect(r.state).toBe("stopped");
  });

  it.each([
    [{ databaseUrl: "mysql://x" }, /`databaseUrl` to be a postgres:\/\/ or postgresql:\/\/ URL, got mysql:\/\/x/],
    [{ databaseUrl: "postgresql://u:secret@h/db", amqpUrl: undefined }, /`amqpUrl`.*or `transport`/],
    [
      { amqpUrl: "http://guest:secret@h" },
      /`amqpUrl` to be an amqp:\/\/ or amqps:\/\/ URL, got http:\/\/guest:\*\*\*@h/,
    ],
    [{ batchSize: 0 }, /`batchSize` to be an integer >= 1, got 0/],
    [{ retryBaseDelayMs: 10, retryMaxDelayMs: 5 }, /`retryMaxDelayMs` \(5\) to be >= `retryBaseDelayMs` \(10\)/],
    [{ exchanges: [{ name: "x", type: "nope" }] }, /exchanges/],
  ])("createRelay(%j) throws OutboxConfigError that names the fix", (options, message) => {
    const make = () => createRelay({ databaseUrl: url, amqpUrl, ...(options as object) } as never);
    expect(make).toThrow(OutboxConfigError);
    expect(make).toThrow(message);
    try {
      make();
    } catch (e) {
      expect((e as Error).message).not.toContain("secret");
    }
  });
});

// Ordering keys at the relay, against PostgreSQL and RabbitMQ: never two messages of one key in flight across relays,
// a key's later message never published before the one before it is confirmed, a refused message blocks only its key,
// and after a dead letter the key stops (default) or continues.
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { OutboxConfigError, OutboxQueue, outbox } from "../../src/index.js";
import { outboxNames } from "../../src/sql/names.js";
import { deadLetterFilterSql } from "../../src/sql/ops/dead-letter-filter.js";
import { retryDeadLettersSql } from "../../src/sql/ops/dead-letters.js";
import { type Arrival, startCountingConsumer, uniqueName } from "../support/consumer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { outboxCount as countOutbox } from "../support/tables.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const { relay, defer } = useTestRelays({
  databaseUrl: url,
  amqpUrl,
  queue: false,
  sweepIntervalMs: 200,
  logger: false,
});
async function consumer(bindingKey = "#") {
  const c = await startCountingConsumer(amqpUrl, uniqueName("ordering"), bindingKey);
  defer(() => c.close());
  return c;
}
const outboxCount = () => countOutbox(pool);

/** The message ids received per ordering key (header x-ordering-key), in arrival order. */
function byKey(arrivals: readonly Arrival[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const a of arrivals) {
    const key = a.properties.headers?.["x-ordering-key"] as string | undefined;
    if (key === undefined) continue;
    const list = out.get(key) ?? [];
    list.push(a.messageId);
    out.set(key, list);
  }
  return out;
}

/** Moves a message to the dead letters with its id, as if it had failed its last attempt. */
async function deadLetter(messageId: string): Promise<void> {
  await pool.query(
    `WITH moved AS (DELETE FROM outbox_message WHERE message_id = $1 RETURNING *)
    INSERT INTO outbox_dead_letter (id, message_id, exchange, routing_key, payload, headers, type, correlation_id,
      attempts, last_error, created_at, ordering_key)
    SELECT id, message_id, exchange, routing_key, payload, headers, type, correlation_id, 3, 'x', created_at, ordering_key
    FROM moved`,
    [messageId],
  );
}

beforeEach(async () => {
  await pool.query("TRUNCATE outbox_message, outbox_dead_letter RESTART IDENTITY CASCADE");
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe("relay: ordering keys", () => {
  it("three relays, 50 keys, 3,000 messages: per key, published in commit order, one at a time", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    // Every written row's id, key and message id, logged as it is inserted (the relays delete the rows).
    await pool.query(`CREATE TABLE IF NOT EXISTS written_log (id bigint PRIMARY KEY, message_id text, ordering_key text);
      TRUNCATE written_log;
      CREATE OR REPLACE FUNCTION log_written() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        INSERT INTO written_log VALUES (NEW.id, NEW.message_id::text, NEW.ordering_key) ON CONFLICT DO NOTHING;
        RETURN NEW; END $$;
      CREATE OR REPLACE TRIGGER log_written AFTER INSERT ON outbox_message FOR EACH ROW EXECUTE FUNCTION log_written();`);
    defer(() => pool.query("DROP TRIGGER log_written ON outbox_message"));
    const rs = [relay({ batchSize: 100 }), relay({ batchSize: 100 }), relay({ batchSize: 100 })];
    await Promise.all(rs.map((r) => r.start()));
    // Written by 6 concurrent writers, each message in its own transaction or in a few keys at once.
    const expected = new Map<string, string[]>();
    const writer = async (w: number) => {
      for (let i = 0; i < 100; i++) {
        const keys = [`k${(w * 7 + i) % 50}`, `k${(w * 13 + i * 3) % 50}`];
        const messages = keys.map((key, j) => ({ routingKey: "ordered", payload: { w, i, j }, key }));
        await prisma.$transaction(async (tx) => {
          await tx.$enqueue(messages);
        });
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, w) => writer(w)));
    const total = 6 * 100 * 2;
    await c.waitForDistinct(total, 60_000);
    expect(c.duplicates).toBe(0);
    // The commit order of a key is its id order (the insert's key locks), logged by the trigger as rows were written.
    const { rows } = await pool.query("SELECT message_id, ordering_key FROM written_log ORDER BY id");
    expect(rows).toHaveLength(total);
    for (const r of rows as Array<{ message_id: string; ordering_key: string }>) {
      expected.set(r.ordering_key, [...(expected.get(r.ordering_key) ?? []), r.message_id]);
    }
    const received = byKey(c.arrivals);
    for (const [key, ids] of expected) expect(received.get(key), `key ${key}`).toEqual(ids);
    expect(received.size).toBe(50);
    await expect.poll(outboxCount).toBe(0);
    expect(rs.every((r) => r.stats().published > 0)).toBe(true);
  });

  it("a backlog of 2,000 messages on 40 keys, drained by 4 relays: per key, exactly the commit order", async () => {
    const c = await consumer();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const ids = await prisma.$enqueue(
      Array.from({ length: 2_000 }, (_, i) => ({ routingKey: "backlog", payload: i, key: `b${(i * 7) % 40}` })),
    );
    const expected = new Map<string, string[]>();
    ids.forEach((id, i) => {
      const key = `b${(i * 7) % 40}`;
      expected.set(key, [...(expected.get(key) ?? []), id]);
    });
    // Batches smaller than the number of keys: each claim takes the heads of some keys, and the relays share the keys.
    const rs = [relay({ batchSize: 10 }), relay({ batchSize: 10 }), relay({ batchSize: 10 }), relay({ batchSize: 10 })];
    await Promise.all(rs.map((r) => r.start()));
    await c.waitForDistinct(2_000, 60_000);
    expect(c.duplicates).toBe(0);
    const received = byKey(c.arrivals);
    for (const [key, list] of expected) expect(received.get(key), `key ${key}`).toEqual(list);
    expect(rs.filter((r) => r.stats().published > 0).length).toBeGreaterThan(1);
  });

  it("the in-process fast path: a transaction's messages of one key, claimed by id, arrive in order", async () => {
    const c = await consumer();
    const queue = new OutboxQueue();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue }));
    const r = relay({ queue, listen: false, sweepIntervalMs: 60_000 });
    await r.start();
    const expected: string[] = [];
    for (let i = 0; i < 20; i++) {
      expected.push(
        ...(await prisma.$enqueue([
          { routingKey: "fast", payload: { i, n: 1 }, key: "fast-key" },
          { routingKey: "fast", payload: { i, n: 2 }, key: "fast-key" },
          { routingKey: "fast", payload: { i, n: 3 }, key: "fast-key" },
        ])),
      );
    }
    // The sweeper waits a minute: only the queue path, and the wake-ups after each published keyed row, publish.
    await c.waitForDistinct(60, 15_000);
    expect(byKey(c.arrivals).get("fast-key")).toEqual(expected);
  });

  it("declared events with a key: the ordering key is the record's field, sent as header x-ordering-key", async () => {
    const c = await consumer();
    const queue = new OutboxQueue();
    const prisma = base.$extends(
      outbox<typeof base>({
        exchange: c.exchange,
        queue,
        events: { Order: { create: { key: "number" }, update: { routingKey: "order.changed", key: (o) => o.number } } },
      }),
    );
    const r = relay({ queue });
    await r.start();
    const order = await prisma.order.create({ data: { number: "K-1", amount: 1 } });
    await prisma.order.update({ where: { id: order.id }, data: { amount: 2 } });
    await c.waitForDistinct(2, 10_000);
    expect(c.arrivals.map((a) => [a.routingKey, a.properties.headers?.["x-ordering-key"]])).toEqual([
      ["order.created", "K-1"],
      ["order.changed", "K-1"],
    ]);
  });

  it("a refused message blocks only its key while it is retried; after its dead letter the key stops (default)", async () => {
    // The consumer binds only "ok.#": "nowhere" has no route, so the broker refuses it (unroutable).
    const c = await consumer("ok.#");
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const r = relay({ maxAttempts: 3, retryBaseDelayMs: 100, retryMaxDelayMs: 200, sweepMinAgeMs: 0 });
    const events: string[] = [];
    r.onEvent((e) => events.push(e.type));
    const [poison] = await prisma.$enqueue({ routingKey: "nowhere", payload: 0, key: "blocked" });
    const blocked = await prisma.$enqueue([
      { routingKey: "ok.1", payload: 1, key: "blocked" },
      { routingKey: "ok.2", payload: 2, key: "blocked" },
    ]);
    const free = await prisma.$enqueue([
      { routingKey: "ok.a", payload: "a", key: "free" },
      { routingKey: "ok.b", payload: "b", key: "free" },
      { routingKey: "ok.plain", payload: "no key" },
    ]);
    await r.start();
    await c.waitForDistinct(3, 10_000);
    expect(new Set(c.arrivals.map((a) => a.messageId))).toEqual(new Set(free));
    expect(byKey(c.arrivals).get("free")).toEqual(free.slice(0, 2));
    await expect
      .poll(async () => (await pool.query("SELECT count(*)::int AS n FROM outbox_dead_letter")).rows[0].n, {
        timeout: 10_000,
      })
      .toBe(1);
    const dead = await pool.query("SELECT message_id::text AS id, ordering_key FROM outbox_dead_letter");
    expect(dead.rows).toEqual([{ id: poison, ordering_key: "blocked" }]);
    expect(events.filter((e) => e === "retry-scheduled")).toHaveLength(2);
    // Stopped: the key's later messages stay while its dead letter is there (several sweeps pass meanwhile).
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(c.distinct).toBe(3);
    expect(await outboxCount()).toBe(2);
    // The operator deletes the dead letter (or moves it back): the key goes on, in order.
    await pool.query("DELETE FROM outbox_dead_letter");
    await c.waitForDistinct(5, 10_000);
    expect(c.arrivals.slice(3).map((a) => a.messageId)).toEqual(blocked);
  });

  it('keyAfterDeadLetter "continue": the key goes on after a dead letter, in order', async () => {
    const c = await consumer("ok.#");
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const r = relay({
      maxAttempts: 2,
      retryBaseDelayMs: 50,
      retryMaxDelayMs: 100,
      sweepMinAgeMs: 0,
      keyAfterDeadLetter: "continue",
    });
    await prisma.$enqueue({ routingKey: "nowhere", payload: 0, key: "goes-on" });
    const later = await prisma.$enqueue([
      { routingKey: "ok.1", payload: 1, key: "goes-on" },
      { routingKey: "ok.2", payload: 2, key: "goes-on" },
    ]);
    await r.start();
    await c.waitForDistinct(2, 10_000);
    expect(c.arrivals.map((a) => a.messageId)).toEqual(later);
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox_dead_letter")).rows[0].n).toBe(1);
  });

  it("a dead letter moved back to the outbox with its id is published before the rest of its key", async () => {
    const c = await consumer("#");
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const [first, second] = await prisma.$enqueue([
      { routingKey: "m.1", payload: 1, key: "moved" },
      { routingKey: "m.2", payload: 2, key: "moved" },
    ]);
    // As if the first had failed its last attempt: in the dead letters with its id.
    await deadLetter(first!);
    const r = relay({ sweepMinAgeMs: 0 });
    await r.start();
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(c.distinct).toBe(0);
    await pool.query(`WITH back AS (DELETE FROM outbox_dead_letter RETURNING *)
      INSERT INTO outbox_message (id, message_id, exchange, routing_key, payload, headers, type, correlation_id,
        created_at, ordering_key)
      SELECT id, message_id, exchange, routing_key, payload, headers, type, correlation_id, created_at, ordering_key
      FROM back`);
    await c.waitForDistinct(2, 10_000);
    expect(c.arrivals.map((a) => a.messageId)).toEqual([first, second]);
  });

  it("dead-letters retry (the CLI's SQL) puts a keyed dead letter back with its id and key: published first", async () => {
    const c = await consumer("#");
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    const [first, second] = await prisma.$enqueue([
      { routingKey: "r.1", payload: 1, key: "retried" },
      { routingKey: "r.2", payload: 2, key: "retried" },
    ]);
    await deadLetter(first!);
    const filter = deadLetterFilterSql({}, "failed_at");
    const { rows } = await pool.query(retryDeadLettersSql(outboxNames(), filter), filter.params);
    expect(rows[0]).toEqual({ moved: 1, queued: 1 });
    const back = await pool.query(
      "SELECT message_id::text AS id, ordering_key FROM outbox_message ORDER BY outbox_message.id",
    );
    expect(back.rows).toEqual([
      { id: first, ordering_key: "retried" },
      { id: second, ordering_key: "retried" },
    ]);
    const r = relay({ sweepMinAgeMs: 0 });
    await r.start();
    await c.waitForDistinct(2, 10_000);
    expect(c.arrivals.map((a) => a.messageId)).toEqual([first, second]);
  });

  it("rejects an unknown keyAfterDeadLetter", () => {
    expect(() => relay({ keyAfterDeadLetter: "skip" as never })).toThrow(OutboxConfigError);
    expect(() => relay({ keyAfterDeadLetter: "skip" as never })).toThrow(/keyAfterDeadLetter/);
  });
});

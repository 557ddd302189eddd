// The test kit's clock against the real PostgreSQL (and RabbitMQ for the inbox): a retry's backoff ends when the clock
// moves, not when real time passes, on both halves; installing is idempotent and safe when test files race; the
// clock's time is the database's now() plus its offset.
import { randomUUID } from "node:crypto";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type InboxEvent, inbox, outbox, type RelayEvent } from "../../src/index.js";
import { TEST_CLOCK_SCHEMA } from "../../src/sql/testing/clock.js";
import { TestClock } from "../../src/testing/clock.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { outboxCount } from "../support/tables.js";
import { sleep, until } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl).$extends(outbox({ exchange: "clock", queue: false }));
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);
const relays = useTestRelays({ databaseUrl, queue: false, sweepIntervalMs: 50, sweepMinAgeMs: 0, logger: quiet });

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect", outbox_message, outbox_dead_letter RESTART IDENTITY');
});
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

/** The clock's time minus the database's now(), in ms, as one statement sees them. */
async function aheadMs(clock: TestClock): Promise<number> {
  const { rows } = await pool.query(`SELECT (extract(epoch FROM ${clock.sql} - now()) * 1000)::float8 AS ms`);
  return rows[0].ms;
}

describe("installing", () => {
  it("is safe when many install at once in a database without the kit's schema, and idempotent", async () => {
    await pool.query(`DROP SCHEMA IF EXISTS ${TEST_CLOCK_SCHEMA} CASCADE`);
    const pools = Array.from({ length: 6 }, () => newPool(databaseUrl, 1));
    const clocks = pools.map(() => new TestClock());
    try {
      // Each on its own session, all at once: CREATE ... IF NOT EXISTS alone would race (23505 / 42P07).
      await Promise.all(clocks.map((c, i) => c.install(pools[i]!)));
      await Promise.all(clocks.map((c, i) => c.install(pools[i]!)));
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${TEST_CLOCK_SCHEMA}.clock`);
      expect(rows[0].n).toBe(6);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it("the clock's SQL is now() plus its offset, set in every database it is installed in; a pool that ended is forgotten", async () => {
    const clock = new TestClock();
    const other = newPool(databaseUrl, 1);
    await clock.install(pool);
    await clock.install(other);
    expect(await aheadMs(clock)).toBe(0);
    await clock.advance(90_000);
    expect(await aheadMs(clock)).toBe(90_000);
    await other.end();
    await clock.advance(10_000); // the ended pool is skipped, not an error
    expect(await aheadMs(clock)).toBe(100_000);
    // Installed after moves, a clock writes its whole offset; another clock's time is its own.
    const late = new TestClock();
    await late.advance(5_000);
    await late.install(pool);
    expect(await aheadMs(late)).toBe(5_000);
    expect(await aheadMs(clock)).toBe(100_000);
  });
});

/** An inbox on `clock` whose handler fails on its first `failures` attempts; its one row and its retries. */
async function flakyInbox(clock: TestClock, failures: number, sweepIntervalMs: number) {
  const { exchange, queue } = await exchangeAndQueue("clock");
  const events: InboxEvent[] = [];
  const box = track(
    inbox<{ "order.created": { n: number } }, typeof prisma>({
      prisma,
      queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
      handlers: {
        flaky: {
          on: "order.created",
          handle: async (message, tx) => {
            await recordEffect(tx, message, "flaky");
            if (message.attempt <= failures) throw new Error(`failing on attempt ${message.attempt}`);
          },
        },
      },
      // A minute's backoff, then two: the test would take minutes on real time.
      retryBaseDelayMs: 60_000,
      retryMaxDelayMs: 120_000,
      sweepIntervalMs,
      logger: quiet,
    }),
  );
  box.onEvent((e) => events.push(e));
  await box.start({ databaseUrl, amqpUrl, clock });
  channel.publish(exchange, "order.created", Buffer.from(JSON.stringify({ n: 1 })), { messageId: randomUUID() });
  await channel.waitForConfirms();
  return {
    row: async () =>
      (await pool.query("SELECT status, attempts, last_error FROM inbox_message")).rows[0] as
        | { status: string; attempts: number; last_error: string | null }
        | undefined,
    retries: () => events.filter((e) => e.type === "retry-scheduled").length,
  };
}

describe("the inbox on a test clock", () => {
  it("a handler that fails twice succeeds on its third attempt after two moves of the clock, in well under a second", async () => {
    const clock = new TestClock();
    // Sweeps every 50 ms of real time: they would retry the row if its backoff were measured on real time.
    const { row, retries } = await flakyInbox(clock, 2, 50);
    await until(() => retries() === 1);
    await sleep(400);
    expect(await row()).toMatchObject({ status: "pending", attempts: 1, last_error: "Error: failing on attempt 1" });

    const started = performance.now();
    await clock.advance(60_000); // past the first backoff (30 to 60 s)
    await until(() => retries() === 2, 5_000);
    expect(await row()).toMatchObject({ status: "pending", attempts: 2 });
    await clock.advance(120_000); // past the second (60 to 120 s)
    await until(async () => (await row())?.status === "processed", 5_000);
    const elapsedMs = performance.now() - started;

    expect(await row()).toMatchObject({ status: "processed", attempts: 3, last_error: null });
    // The failed attempts' writes rolled back: one effect, the third attempt's.
    expect((await pool.query('SELECT handler FROM "Effect"')).rows).toEqual([{ handler: "flaky" }]);
    expect(elapsedMs).toBeLessThan(1_000);
  });

  it("a move of the clock wakes the processor: the retry needs no sweep", async () => {
    const clock = new TestClock();
    const { row, retries } = await flakyInbox(clock, 1, 60_000);
    await until(() => retries() === 1);
    const started = performance.now();
    await clock.advance(60_000);
    await until(async () => (await row())?.status === "processed", 5_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await row()).toMatchObject({ status: "processed", attempts: 2 });
  });
});

describe("the relay on a test clock", () => {
  /** A relay on `clock` whose first publish is refused; its events. */
  async function refusingRelay(clock: TestClock, sweepIntervalMs: number) {
    const transport = new MemoryTransport();
    const relay = relays.relay({
      transport,
      clock,
      retryBaseDelayMs: 600_000,
      retryMaxDelayMs: 600_000,
      sweepIntervalMs,
    });
    const events: RelayEvent[] = [];
    relay.onEvent((e) => events.push(e));
    transport.failNext(1);
    await relay.start();
    const [id] = await prisma.$enqueue([{ routingKey: "order.created", payload: { n: 1 } }]);
    await until(() => events.some((e) => e.type === "retry-scheduled"));
    return { relay, transport, id };
  }

  it("a refused publish is retried only once the clock passed its backoff, with no real wait", async () => {
    const clock = new TestClock();
    const { relay, transport, id } = await refusingRelay(clock, 50);
    // Sweeps and drain loops run on real time (sweepIntervalMs 50): the row waits for its 5 to 10 minutes.
    await sleep(400);
    expect(transport.published).toHaveLength(0);
    expect(await outboxCount(pool)).toBe(1);

    const started = performance.now();
    await clock.advance(600_000);
    await until(() => transport.published.length === 1, 5_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(transport.published[0]!.messageId).toBe(id);
    // The transport records the publish before the relay's transaction that deletes the row commits (failed once).
    await until(async () => (await outboxCount(pool)) === 0, 10_000);
    expect(await outboxCount(pool)).toBe(0);

    // Stopped, the relay no longer listens to the clock, and the clock forgets the relay's ended pool.
    await relay.stop();
    await expect(clock.advance(1_000)).resolves.toBeUndefined();
  });

  it("a move of the clock wakes the relay: the retry needs no sweep", async () => {
    const clock = new TestClock();
    const { transport } = await refusingRelay(clock, 60_000);
    const started = performance.now();
    await clock.advance(600_000);
    await until(() => transport.published.length === 1, 5_000);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

// Liveness of the relay (real PostgreSQL, the in-memory broker): no batch may fail forever, whatever its messages do;
// what the relay tells (events, logs) comes after what it committed, and a listener or logger that throws changes
// nothing.
import { afterAll, expect, it, vi } from "vitest";
import { createRelay, outbox, type RelayOptions } from "../../src/index.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import type { OutboundMessage, PublishOptions } from "../../src/transport/transport.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { outboxCount as countOutbox } from "../support/tables.js";

const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const prisma = base.$extends(outbox({ exchange: "mem", queue: false }));
const outboxCount = () => countOutbox(pool);
const deadLetters = async () =>
  (
    await pool.query<{ message_id: string; attempts: number; last_error: string }>(
      "SELECT message_id::text, attempts, last_error FROM outbox_dead_letter",
    )
  ).rows;

const relays = useTestRelays(
  { databaseUrl: url, queue: false, sweepIntervalMs: 50, sweepMinAgeMs: 0, logger: false },
  async () => {
    vi.restoreAllMocks();
    await pool.query("TRUNCATE outbox_message, outbox_dead_letter");
  },
);
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

const relay = (transport: MemoryTransport, options: Partial<RelayOptions> = {}) =>
  relays.relay({ transport, ...options });

/** Records the size of every publish() call. */
class RecordingTransport extends MemoryTransport {
  readonly calls: number[] = [];
  override publish(messages: OutboundMessage[], options: PublishOptions) {
    this.calls.push(messages.length);
    return super.publish(messages, options);
  }
}

const write = (n: number, payload: (i: number) => unknown = (i) => i) =>
  prisma.$enqueue(Array.from({ length: n }, (_, i) => ({ routingKey: "k", payload: payload(i) })));

it("a message that makes the broker close the channel fails only itself: found, counted, dead-lettered; the rest flow", async () => {
  const transport = new MemoryTransport();
  const ids = await write(300);
  const poison = new Set([ids[40]!, ids[150]!, ids[299]!]);
  transport.closeChannelOn((m) => poison.has(m.messageId));
  const r = relay(transport, { batchSize: 100, maxAttempts: 3, retryBaseDelayMs: 10, retryMaxDelayMs: 20 });
  await r.start();
  await expect.poll(deadLetters, { timeout: 20_000 }).toHaveLength(3);
  await expect.poll(outboxCount).toBe(0);
  const dead = await deadLetters();
  expect(new Set(dead.map((d) => d.message_id))).toEqual(poison);
  for (const d of dead) {
    expect(d.attempts).toBe(3);
    expect(d.last_error).toMatch(/ACCESS_REFUSED/);
  }
  const published = new Set(transport.published.map((m) => m.messageId));
  expect(ids.filter((id) => !poison.has(id) && !published.has(id))).toEqual([]);
  expect([...poison].filter((id) => published.has(id))).toEqual([]);
  expect(r.stats().isolatedBatches).toBeGreaterThan(0);
});

it("a broker too slow for the batch: timeouts halve the batch limit until batches fit, then no more timeouts", async () => {
  // 2 ms per message against a 300 ms timeout: 500 and 250 time out, 125 (250 ms) fits.
  const transport = new MemoryTransport({ perMessageLatencyMs: 2 });
  await write(1_000);
  const r = relay(transport, { batchSize: 500, concurrency: 1, publishTimeoutMs: 300, sweepIntervalMs: 60_000 });
  await r.start();
  await expect.poll(outboxCount, { timeout: 30_000 }).toBe(0);
  expect(r.stats().batchLimit).toBe(125);
  expect(r.stats().failedBatches).toBe(2);
  // At the adapted limit the next backlog drains without a single timeout: no republish loop.
  await write(1_000);
  r.wake();
  await expect.poll(outboxCount, { timeout: 30_000 }).toBe(0);
  expect(r.stats().failedBatches).toBe(2);
  expect(transport.published).toHaveLength(2_000);
});

it("a lone message that times out with the broker connected has its attempt counted, then is dead-lettered", async () => {
  // Nothing ever confirms in time: without counting, these rows would be claimed and rolled back forever.
  const transport = new MemoryTransport({ confirmLatencyMs: 1_000 });
  const ids = await write(3);
  const r = relay(transport, {
    batchSize: 4,
    publishTimeoutMs: 100,
    maxAttempts: 2,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 20,
  });
  await r.start();
  await expect.poll(deadLetters, { timeout: 20_000 }).toHaveLength(3);
  expect(new Set((await deadLetters()).map((d) => d.message_id))).toEqual(new Set(ids));
  for (const d of await deadLetters()) expect(d.last_error).toMatch(/timed out/);
  expect(r.stats().batchLimit).toBe(1);
});

it("batches are published in parts of at most batchMaxBytes", async () => {
  const transport = new RecordingTransport();
  await write(10, (i) => ({ i, text: "x".repeat(2_000) }));
  const r = relay(transport, { batchMaxBytes: 5_000, concurrency: 1 });
  await r.start();
  await expect.poll(outboxCount).toBe(0);
  expect(transport.calls).toEqual([2, 2, 2, 2, 2]);
  expect(transport.published).toHaveLength(10);
});

it("retry-scheduled and dead-lettered are emitted after their COMMIT", async () => {
  const transport = new MemoryTransport();
  transport.failNext(2);
  const [retried, dead] = await write(2);
  const r = relay(transport, { maxAttempts: 2, concurrency: 1 });
  // Both fail: the first one's first attempt (retried), the second one's last (dead-lettered).
  await pool.query("UPDATE outbox_message SET attempts = 1 WHERE message_id = $1", [dead]);
  const seen: Array<Promise<string>> = [];
  r.onEvent((e) => {
    // Runs at once on another connection: it sees what the relay committed before emitting, nothing else.
    if (e.type === "retry-scheduled") {
      seen.push(
        pool
          .query("SELECT attempts FROM outbox_message WHERE message_id = $1", [e.messageId])
          .then((q) => `retry ${q.rows[0]?.attempts}`),
      );
    }
    if (e.type === "dead-lettered") {
      seen.push(
        pool
          .query("SELECT attempts FROM outbox_dead_letter WHERE message_id = $1", [e.messageId])
          .then((q) => `dead ${q.rows[0]?.attempts}`),
      );
    }
  });
  await r.start();
  await expect.poll(() => seen.length).toBe(2);
  expect((await Promise.all(seen)).sort()).toEqual(["dead 2", "retry 1"]);
  expect(retried).toBeDefined();
  expect(dead).toBeDefined();
});

it("a logger and a listener that throw on everything change nothing: each message published once, none rolled back", async () => {
  const transport = new MemoryTransport();
  const throwing = () => {
    throw new Error("broken logger");
  };
  const r = relay(transport, {
    logger: { info: throwing, warn: throwing, error: throwing },
    maxAttempts: 1,
    batchSize: 50,
  });
  r.onEvent(() => {
    throw new Error("broken listener");
  });
  transport.failNext(3); // dead letters: logged (warn) and emitted
  const ids = await write(200);
  await r.start();
  await expect.poll(outboxCount).toBe(0);
  expect(await deadLetters()).toHaveLength(3);
  const published = transport.published.map((m) => m.messageId);
  expect(published).toHaveLength(197);
  expect(new Set(published).size).toBe(197);
  expect(r.stats()).toMatchObject({ published: 197, deadLettered: 3, failedBatches: 0 });
  expect(ids).toHaveLength(200);
});

it("a broker blocked (resource alarm) when the relay starts keeps it from claiming until unblocked", async () => {
  const transport = new MemoryTransport();
  transport.block();
  const r = relay(transport);
  await r.start();
  await write(20);
  r.wake();
  await new Promise((res) => setTimeout(res, 400)); // several sweeps and wake-ups
  expect(transport.published).toHaveLength(0);
  expect(await outboxCount()).toBe(20);
  transport.unblock();
  await expect.poll(outboxCount).toBe(0);
  expect(transport.published).toHaveLength(20);
});

it("the default logger writes warnings and errors on stderr; `logger: false` silences it", async () => {
  const lines: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  const transport = new MemoryTransport();
  transport.failNext(1);
  await write(1);
  const loud = createRelay({ databaseUrl: url, transport, queue: false, maxAttempts: 1, sweepMinAgeMs: 0 });
  relays.track(loud);
  await loud.start();
  await expect.poll(deadLetters).toHaveLength(1);
  await expect.poll(() => lines.join("")).toMatch(/prisma-outbox relay warn: message dead-lettered/);
  expect(lines.join("")).not.toMatch(/relay started/); // info is dropped
  await loud.stop();

  lines.length = 0;
  const failing = new MemoryTransport();
  failing.failNext(1);
  await write(1);
  const quiet = relay(failing, { maxAttempts: 1, logger: false });
  await quiet.start();
  await expect.poll(deadLetters).toHaveLength(2);
  expect(lines.join("")).toBe("");
});

// Batch handlers against PostgreSQL and RabbitMQ: batches formed by size and by wait; one transaction per batch (the
// handler's writes and the processed marks commit, or roll back, together); one poison message in a batch of 50
// fails only itself (the batch is retried message by message, attempts counted per message, dead after maxAttempts);
// per-key order inside and across batches.
import { randomUUID } from "node:crypto";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type InboxMessage, type InboxOptions, inbox, OutboxConfigError } from "../../src/index.js";
import { useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { effectCount } from "../support/tables.js";
import { sleep } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);

type Payload = { seq: number; key?: string; fail?: "always" | "batch-once" | undefined };
type Messages = { "batch.event": Payload };
type Tx = Parameters<Parameters<typeof prisma.$transaction>[0]>[0];

/** Each call of the batch handler: the messages' seq, and the attempt of each. */
let calls: Array<{ seqs: number[]; attempts: number[]; keys: Array<string | undefined> }> = [];
/** Whether a batch with a "batch-once" message already threw (it throws once, after writing). */
let threwOnce = false;

async function handleBatch(messages: InboxMessage<Payload>[], tx: Tx): Promise<void> {
  calls.push({
    seqs: messages.map((m) => m.payload.seq),
    attempts: messages.map((m) => m.attempt),
    keys: messages.map((m) => m.key),
  });
  for (const m of messages) {
    await tx.effect.create({
      data: { messageId: m.messageId, handler: m.key ?? "-", payload: { seq: m.payload.seq } },
    });
  }
  // Thrown after the writes: they must roll back with the batch.
  if (messages.some((m) => m.payload.fail === "always")) throw new Error("poison message");
  if (messages.length > 1 && !threwOnce && messages.some((m) => m.payload.fail === "batch-once")) {
    threwOnce = true;
    throw new Error("the batch fails once");
  }
}

async function setUp(
  batch: { size?: number; waitMs?: number },
  options: Partial<InboxOptions<Messages, typeof prisma, Tx>> = {},
) {
  const { exchange, queue } = await exchangeAndQueue("batch");
  const make = () =>
    track(
      inbox<Messages, typeof prisma>({
        prisma,
        queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
        handlers: { effects: { on: "batch.event", handleBatch, batch } },
        sweepIntervalMs: 100,
        retryBaseDelayMs: 20,
        retryMaxDelayMs: 60,
        logger: quiet,
        ...options,
      }),
    );
  const publish = (payload: Payload) =>
    channel.publish(exchange, "batch.event", Buffer.from(JSON.stringify(payload)), {
      messageId: randomUUID(),
      headers: payload.key === undefined ? {} : { "x-ordering-key": payload.key },
    });
  /** Publishes `n` messages while no inbox consumes, so the next inbox finds them all at once. */
  const backlog = async (payloads: Payload[]) => {
    const first = make();
    await first.start({ databaseUrl, amqpUrl }); // declares and binds the queue
    await first.stop();
    for (const p of payloads) publish(p);
    await channel.waitForConfirms();
  };
  return { make, publish, backlog };
}

const rows = async () =>
  (
    await pool.query<{ seq: number; status: string; attempts: number; last_error: string | null; xmin: string }>(
      "SELECT (payload->>'seq')::int AS seq, status, attempts, last_error, xmin::text FROM inbox_message ORDER BY id",
    )
  ).rows;
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: 30_000, interval: 50 });

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect" RESTART IDENTITY');
  calls = [];
  threwOnce = false;
});
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

describe("inbox: batch handlers", () => {
  it("forms batches up to `size` from a backlog", async () => {
    const { make, backlog } = await setUp({ size: 50, waitMs: 300 });
    await backlog(Array.from({ length: 120 }, (_, seq) => ({ seq })));
    await make().start({ databaseUrl, amqpUrl });
    await poll(() => effectCount(pool)).toBe(120);
    const sizes = calls.map((c) => c.seqs.length);
    expect(Math.max(...sizes)).toBe(50);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(120);
    expect(calls.length).toBeLessThanOrEqual(6); // 50 + 50 + 20, give or take a receive batch's edge
    expect((await rows()).every((r) => r.status === "processed" && r.attempts === 1)).toBe(true);
  });

  it("waits `waitMs` for a batch to fill: messages arriving one by one share a batch", async () => {
    const { make, publish } = await setUp({ size: 50, waitMs: 300 });
    await make().start({ databaseUrl, amqpUrl });
    for (let seq = 0; seq < 5; seq++) {
      publish({ seq });
      await sleep(20);
    }
    await channel.waitForConfirms();
    await poll(() => effectCount(pool)).toBe(5);
    // Without the wait each message, arriving 20 ms after the last, would start a batch of its own.
    expect(calls.length).toBeLessThan(5);
    expect(calls.flatMap((c) => c.seqs).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
  });

  it("one transaction per batch: the handler's writes and the marks commit together, or roll back together", async () => {
    const { make, backlog } = await setUp({ size: 50, waitMs: 300 });
    await backlog(
      Array.from({ length: 80 }, (_, seq) => ({ seq, fail: seq === 7 ? ("batch-once" as const) : undefined })),
    );
    await make().start({ databaseUrl, amqpUrl });
    await poll(async () => (await rows()).filter((r) => r.status === "processed").length).toBe(80);
    // The batch that threw wrote an Effect for each of its messages: none of those survived its rollback.
    expect(threwOnce).toBe(true);
    expect(await effectCount(pool)).toBe(80);
    const effects = (
      await pool.query<{ seq: number; xmin: string }>(`SELECT (payload->>'seq')::int AS seq, xmin::text FROM "Effect"`)
    ).rows;
    const markedIn = new Map((await rows()).map((r) => [r.seq, r.xmin]));
    // Each message's Effect was written by the transaction that marked its row processed.
    for (const e of effects) expect(markedIn.get(e.seq), `seq ${e.seq}`).toBe(e.xmin);
    // And a committed batch of several messages is one transaction.
    const committed = calls.filter((c) => c.seqs.length > 1 && !c.seqs.includes(7));
    expect(committed.length).toBeGreaterThan(0);
    for (const c of committed) expect(new Set(c.seqs.map((s) => markedIn.get(s))).size).toBe(1);
    // The failed batch cost none of its messages an attempt: each ran once more, alone, as a first attempt.
    expect((await rows()).every((r) => r.attempts === 1)).toBe(true);
  });

  it("one poison message in a batch of 50: 49 handled, the bad one retried alone and dead after maxAttempts", async () => {
    const { make, backlog } = await setUp({ size: 50, waitMs: 300 }, { maxAttempts: 3 });
    await backlog(
      Array.from({ length: 50 }, (_, seq) => ({ seq, fail: seq === 23 ? ("always" as const) : undefined })),
    );
    await make().start({ databaseUrl, amqpUrl });
    await poll(async () => (await rows()).filter((r) => r.status !== "pending").length).toBe(50);
    const all = await rows();
    const bad = all.find((r) => r.seq === 23)!;
    expect(bad).toMatchObject({ status: "dead", attempts: 3 });
    expect(bad.last_error).toContain("poison message");
    const good = all.filter((r) => r.seq !== 23);
    expect(good.every((r) => r.status === "processed" && r.attempts === 1)).toBe(true);
    expect(await effectCount(pool)).toBe(49);
    // The batch of 50 with the poison in it ran once; then the poison ran alone, attempts 1, 2, 3.
    expect(calls.filter((c) => c.seqs.includes(23) && c.seqs.length > 1)).toHaveLength(1);
    expect(calls.filter((c) => c.seqs.length === 1 && c.seqs[0] === 23).map((c) => c.attempts[0])).toEqual([1, 2, 3]);
  });

  it("per key: in order inside and across batches, at most one message of a key per batch", async () => {
    const { make, publish } = await setUp({ size: 50, waitMs: 20 }, { concurrency: 4 });
    await make().start({ databaseUrl, amqpUrl });
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const per = 25;
    for (let seq = 0; seq < per; seq++) {
      for (const [i, key] of keys.entries()) {
        publish({ seq, key, fail: (seq * 7 + i) % 13 === 0 ? "batch-once" : undefined });
      }
    }
    await channel.waitForConfirms();
    await poll(() => effectCount(pool)).toBe(keys.length * per);
    const { rows: effects } = await pool.query<{ key: string; seq: number }>(
      `SELECT handler AS key, (payload->>'seq')::int AS seq FROM "Effect" ORDER BY id`,
    );
    for (const key of keys) {
      expect(
        effects.filter((e) => e.key === key).map((e) => e.seq),
        key,
      ).toEqual(Array.from({ length: per }, (_, s) => s));
    }
    for (const c of calls) expect(new Set(c.keys).size).toBe(c.keys.length);
    expect(Math.max(...calls.map((c) => c.seqs.length))).toBeGreaterThan(1);
  });

  it("validates the options: handle or handleBatch, not both; size and waitMs in range", () => {
    const make = (spec: object) =>
      inbox({
        prisma,
        queue: { name: "q" },
        handlers: { h: { on: "k", ...spec } as never },
      });
    const fn = async () => {};
    expect(() => make({ handle: fn, handleBatch: fn })).toThrow(OutboxConfigError);
    expect(() => make({ handle: fn, batch: { size: 5 } })).toThrow(/handleBatch/);
    expect(() => make({ handleBatch: fn, batch: { size: 0 } })).toThrow(/batch\.size/);
    expect(() => make({ handleBatch: fn, batch: { size: 1_001 } })).toThrow(/batch\.size/);
    expect(() => make({ handleBatch: fn, batch: { waitMs: 301 } })).toThrow(/batch\.waitMs/);
    expect(() => make({ handleBatch: fn, batch: { sise: 5 } })).toThrow(/size/);
    expect(() => make({ handleBatch: fn })).not.toThrow();
  });
});

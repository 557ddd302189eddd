// Ordering keys at the inbox, against PostgreSQL and RabbitMQ: per key (header x-ordering-key) and handler, messages
// are handled one at a time in the order received, across inboxes; a failing message holds back its key only; after a
// dead one the key stops (default) or continues.
import { randomUUID } from "node:crypto";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type InboxOptions, inbox, OutboxConfigError } from "../../src/index.js";
import { useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { effectCount as countEffects } from "../support/tables.js";
import { until as waitFor } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);

type Payload = { key: string; seq: number; fail?: "once" | "always" };
type Messages = { "order.event": Payload };

/** Handlers of one key running at once, at most, seen by any inbox of this file. */
let overlap = 0;
const active = new Map<string, number>();

async function setUp(options: Partial<InboxOptions<Messages, typeof prisma, any>> = {}) {
  const { exchange, queue } = await exchangeAndQueue("ordering");
  const make = () => {
    const box = inbox<Messages, typeof prisma>({
      prisma,
      // One consumer at a time receives (so a key's deliveries are stored in queue order); every inbox handles.
      queue: {
        name: queue,
        arguments: { "x-single-active-consumer": true },
        bindings: [{ exchange, routingKey: "#" }],
      },
      handlers: {
        effect: {
          on: "order.event",
          handle: async (message, tx) => {
            const { key, seq, fail } = message.payload;
            const now = (active.get(key) ?? 0) + 1;
            active.set(key, now);
            if (now > 1) overlap++;
            try {
              await new Promise((r) => setTimeout(r, seq % 3));
              await tx.effect.create({ data: { messageId: message.messageId, handler: key, payload: { seq } } });
              if (fail === "always" || (fail === "once" && message.attempt === 1))
                throw new Error(`failing ${key}/${seq}`);
            } finally {
              active.set(key, (active.get(key) ?? 1) - 1);
            }
          },
        },
      },
      sweepIntervalMs: 100,
      retryBaseDelayMs: 20,
      retryMaxDelayMs: 60,
      logger: quiet,
      ...options,
    });
    return track(box);
  };
  const publish = (key: string, seq: number, fail?: Payload["fail"]) =>
    channel.publish(exchange, "order.event", Buffer.from(JSON.stringify({ key, seq, fail })), {
      messageId: randomUUID(),
      headers: { "x-ordering-key": key },
    });
  return { make, publish };
}

/** Handled sequence numbers per key, in commit order of the handlers' transactions. */
async function handled(): Promise<Map<string, number[]>> {
  const { rows } = await pool.query("SELECT handler AS key, (payload->>'seq')::int AS seq FROM \"Effect\" ORDER BY id");
  const out = new Map<string, number[]>();
  for (const r of rows as Array<{ key: string; seq: number }>) out.set(r.key, [...(out.get(r.key) ?? []), r.seq]);
  return out;
}
const effectCount = () => countEffects(pool);
const until = (check: () => Promise<boolean>) => waitFor(check, 30_000);

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect" RESTART IDENTITY');
  overlap = 0;
  active.clear();
});
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

describe("inbox: ordering keys", () => {
  it("two inboxes, 30 keys, 1,500 messages, some failing once: per key, handled one at a time in order", async () => {
    const { make, publish } = await setUp({ concurrency: 6 });
    const boxes = [make(), make()];
    for (const box of boxes) await box.start({ databaseUrl, amqpUrl });
    const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);
    const per = 50;
    for (let seq = 0; seq < per; seq++) {
      for (const [i, key] of keys.entries()) publish(key, seq, (seq * 7 + i) % 11 === 0 ? "once" : undefined);
    }
    await channel.waitForConfirms();
    await until(async () => (await effectCount()) >= keys.length * per);
    const byKey = await handled();
    for (const key of keys) expect(byKey.get(key), key).toEqual(Array.from({ length: per }, (_, s) => s));
    expect(overlap).toBe(0);
    const stored = await pool.query("SELECT count(*)::int AS n FROM inbox_message WHERE ordering_key IS NOT NULL");
    expect(stored.rows[0].n).toBe(keys.length * per);
  });

  it("a key's next message, handed over while the one before it runs, starts as that one ends, not at the sweeper's tick", async () => {
    // The sweeper is off (1 min): a key's later messages arrive with the first, are left by the claim of the ids
    // handed over (their key is busy), and only being claimed again when the one before ends gets them handled in time.
    const { make, publish } = await setUp({ sweepIntervalMs: 60_000 });
    const box = make();
    await box.start({ databaseUrl, amqpUrl });
    for (let seq = 0; seq < 20; seq++) publish("one", seq);
    for (let seq = 0; seq < 5; seq++) publish(`other-${seq}`, 0);
    await channel.waitForConfirms();
    await waitFor(async () => ((await handled()).get("one") ?? []).length === 20, 20_000);
    expect((await handled()).get("one")).toEqual(Array.from({ length: 20 }, (_, s) => s));
    expect(overlap).toBe(0);
  });

  it("one key's backlog, longer than a sweep interval to drain, is handled back to back, not one message per sweeper tick", async () => {
    // 150 messages of one key published at once: each one's successor becomes claimable only as it ends,
    // for longer than a sweep interval in all. Claiming the key's next row at each end keeps it going (seconds); a
    // processor that left it to the sweeper would handle one message per 500 ms tick (over a minute).
    const { make, publish } = await setUp({ sweepIntervalMs: 500 });
    const box = make();
    await box.start({ databaseUrl, amqpUrl }); // declares the queue and its binding
    const per = 150;
    for (let seq = 0; seq < per; seq++) publish("hot", seq);
    await channel.waitForConfirms();
    await waitFor(async () => ((await handled()).get("hot") ?? []).length === per, 30_000);
    expect((await handled()).get("hot")).toEqual(Array.from({ length: per }, (_, s) => s));
    expect(overlap).toBe(0);
  });

  it("a dead message stops its key (default) until it is deleted; other keys go on", async () => {
    const { make, publish } = await setUp({ maxAttempts: 2 });
    const box = make();
    await box.start({ databaseUrl, amqpUrl });
    publish("stuck", 0, "always");
    publish("stuck", 1);
    publish("stuck", 2);
    publish("free", 0);
    publish("free", 1);
    await channel.waitForConfirms();
    await until(async () => (await pool.query("SELECT 1 FROM inbox_message WHERE status = 'dead'")).rowCount === 1);
    await until(async () => ((await handled()).get("free") ?? []).length === 2);
    await new Promise((r) => setTimeout(r, 500)); // several sweeps
    expect((await handled()).get("stuck")).toBeUndefined();
    await pool.query("DELETE FROM inbox_message WHERE status = 'dead'");
    await until(async () => ((await handled()).get("stuck") ?? []).length === 2);
    expect((await handled()).get("stuck")).toEqual([1, 2]);
  });

  it('keyAfterDead "continue": the key goes on after a dead message, in order', async () => {
    const { make, publish } = await setUp({ maxAttempts: 2, keyAfterDead: "continue" });
    const box = make();
    await box.start({ databaseUrl, amqpUrl });
    publish("gap", 0, "always");
    publish("gap", 1);
    publish("gap", 2);
    await channel.waitForConfirms();
    await until(async () => ((await handled()).get("gap") ?? []).length === 2);
    expect((await handled()).get("gap")).toEqual([1, 2]);
  });

  it("rejects an unknown keyAfterDead", () => {
    expect(() =>
      inbox({
        prisma,
        queue: { name: "q" },
        handlers: { h: { on: "x", handle: async () => {} } },
        keyAfterDead: "x" as never,
      }),
    ).toThrow(OutboxConfigError);
  });
});

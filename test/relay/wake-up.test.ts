// The cross-process wake-up without a NOTIFY in every writing transaction (src/extension/notifier.ts): writers send
// at most one NOTIFY per notifyIntervalMs after their commits, always one after the last; a relay that shares nothing
// with the writers but the database publishes every message on that wake-up alone, idle or not.
import { performance } from "node:perf_hooks";
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createRelay, OutboxConfigError, outbox, type RelayEvent } from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
let listener: pg.PoolClient;
const notes: number[] = [];

beforeAll(async () => {
  listener = await pool.connect();
  listener.on("notification", () => notes.push(performance.now()));
  await listener.query("LISTEN prisma_outbox");
});
beforeEach(async () => {
  await pool.query("TRUNCATE outbox_message");
  notes.length = 0;
});
afterAll(async () => {
  await new Promise((r) => setTimeout(r, 400)); // the last trailing NOTIFYs go out before the client disconnects
  listener.release();
  await base.$disconnect();
  await pool.end();
});

/** `transactions` transactions of one message each, `concurrency` at a time; resolves with when the last committed. */
async function write(
  prisma: { $transaction: (fn: (tx: any) => Promise<unknown>) => Promise<unknown> },
  transactions: number,
  concurrency: number,
  exchange = "x",
): Promise<number> {
  let next = 0;
  let lastCommit = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < transactions) {
        const i = next++;
        await prisma.$transaction((tx) => tx.$enqueue({ exchange, routingKey: "k", payload: { i } }));
        lastCommit = performance.now();
      }
    }),
  );
  return lastCommit;
}

describe("notify: true (the default)", () => {
  it("32 concurrent writers send far fewer NOTIFYs than commits, and one after the last commit", async () => {
    const prisma = base.$extends(outbox({ queue: false, notifyIntervalMs: 20 }));
    const lastCommit = await write(prisma, 300, 32);
    await expect.poll(() => notes.at(-1) ?? 0).toBeGreaterThan(lastCommit);
    await new Promise((r) => setTimeout(r, 60));
    expect(notes.length).toBeGreaterThan(0);
    expect(notes.length).toBeLessThan(300 / 4);
  });

  it("every way of writing sends one NOTIFY at once and one for the commits that followed within the interval", async () => {
    const prisma = base.$extends(
      outbox<typeof base>({
        exchange: "x",
        queue: false,
        notifyIntervalMs: 300,
        events: { Order: { create: true } },
      }),
    );
    let n = 0;
    const ways: Record<string, () => Promise<unknown>> = {
      "declared event outside a transaction": () => prisma.order.create({ data: { number: `w${n++}`, amount: 1 } }),
      "declared event in $transaction": () =>
        prisma.$transaction((tx) => tx.order.create({ data: { number: `w${n++}`, amount: 1 } })),
      "$enqueue on its own": () => prisma.$enqueue({ routingKey: "k", payload: 1 }),
      "$enqueue in $transaction": () => prisma.$transaction((tx) => tx.$enqueue({ routingKey: "k", payload: 1 })),
    };
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    for (const [way, run] of Object.entries(ways)) {
      await new Promise((r) => setTimeout(r, 350)); // the previous interval is over
      notes.length = 0;
      const started = performance.now();
      for (let i = 0; i < 10; i++) await run();
      const took = performance.now() - started;
      await expect.poll(() => notes.length, { timeout: 3_000 }).toBeGreaterThanOrEqual(2);
      await new Promise((r) => setTimeout(r, 350));
      // One at the first commit, one at the end of its interval; a third only if the writes outlasted it.
      expect({ way, notes: notes.length }).toEqual({ way, notes: took < 300 ? 2 : notes.length });
      expect(notes.length).toBeLessThanOrEqual(3);
    }
    process.off("warning", onWarning);
    expect(warnings).toEqual([]);
  }, 30_000);

  it('the control: with notify: "in-transaction" every commit notifies, with false none does', async () => {
    const inTx = base.$extends(outbox({ queue: false, notify: "in-transaction" }));
    await write(inTx, 50, 8);
    await expect.poll(() => notes.length).toBe(50);
    notes.length = 0;
    const off = base.$extends(outbox({ queue: false, notify: false }));
    await write(off, 50, 8);
    await off.$enqueue({ exchange: "x", routingKey: "k", payload: 1 });
    await new Promise((r) => setTimeout(r, 100));
    expect(notes).toEqual([]);
  });

  it("bad values throw OutboxConfigError at once", () => {
    expect(() => outbox({ notify: "yes" as never })).toThrow(OutboxConfigError);
    expect(() => outbox({ notify: "yes" as never })).toThrow(/`notify` to be true, false or "in-transaction"/);
    expect(() => outbox({ notifyIntervalMs: -1 })).toThrow(/`notifyIntervalMs` to be an integer from 0 to \d+, got -1/);
  });
});

describe("a relay that shares only the database with the writers", () => {
  it("publishes every message on the after-commit NOTIFY, in bursts and after idle gaps, without its sweeper", async () => {
    const c = await startCountingConsumer(amqpUrl, uniqueName("wake"));
    const paths = new Set<string>();
    // No in-process queue on either side, and a sweeper that would take a minute: only LISTEN can deliver in time.
    const relay = createRelay({ databaseUrl: url, amqpUrl, queue: false, sweepIntervalMs: 60_000 });
    relay.onEvent((e: RelayEvent) => {
      if (e.type === "published") paths.add(e.path);
    });
    await relay.start();
    try {
      const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false, notifyIntervalMs: 20 }));
      let sent = 0;
      for (const burst of [1, 40, 1, 25, 3]) {
        // Idle long enough for the relay's drain loops to end and the writer's interval to pass.
        await new Promise((r) => setTimeout(r, 150));
        await write(prisma, burst, Math.min(burst, 8), c.exchange);
        sent += burst;
        await c.waitForDistinct(sent, 5_000);
      }
      expect(c.duplicates).toBe(0);
      expect([...paths]).toEqual(["listen"]);
      expect(notes.length).toBeLessThan(sent);
    } finally {
      await relay.stop();
      await c.close();
    }
  });
});

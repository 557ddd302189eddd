// Scenario 11: PgBouncer 1.18 in transaction mode with its default settings (no ignore_startup_parameters) in front
// of PostgreSQL, as Supabase, Neon, Heroku or RDS Proxy put one. The app writes through it, and the worker's pool
// claims through it (its timeouts are SET LOCAL in each claim's transaction, not startup parameters, which PgBouncer
// refuses). Three ways to wake the worker:
//   11a. LISTEN on a direct connection (`--listen-url`): latency as without a pooler.
//   11b. no LISTEN (`--no-listen`): the sweeper carries every message (sweepMinAgeMs falls to 0 without a fast path).
//   11c. LISTEN through the pooler by mistake: the LISTEN self-check fails, the losses count up and say so as an
//        error naming --listen-url, the sweeper delivers.
// Every message delivered, none lost; the row carries the latency each way costs.
import { expect, it } from "vitest";
import { outbox } from "../../src/index.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { type Pgbouncer, startPgbouncer } from "../support/pgbouncer.js";
import { newPool, newPrismaClient } from "../support/prisma.js";
import * as h from "./harness.js";

const { amqpUrl, url, pool, defer } = await h.useScenario();
const STREAM_MS = h.size(3_000, 20_000);

async function bouncer(): Promise<Pgbouncer> {
  const b = await startPgbouncer(url);
  defer(() => b.stop());
  return b;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0);
}

/** Streams messages through PgBouncer for STREAM_MS to a worker started with `args`; returns the row. */
async function scenario(name: string, b: Pgbouncer, args: string[], env: Record<string, string> = {}) {
  const pooled = b.url(url);
  const consumer = await startCountingConsumer(amqpUrl, uniqueName("rel.pgb"));
  defer(() => consumer.close());
  const app = newPrismaClient(pooled);
  defer(() => app.$disconnect());
  const prisma = app.$extends(outbox({ queue: false }));
  const worker = await h.startWorker({ databaseUrl: pooled, amqpUrl, args, env });
  const writer = h.streamMessages(prisma, { exchange: consumer.exchange, chunk: 5, everyMs: 20 });
  await new Promise((r) => setTimeout(r, STREAM_MS));
  const ids = await writer.stop();
  expect(writer.errors).toEqual([]);
  await h.waitForDelivery(pool, consumer, ids, 60_000, 300);
  expect(worker.countLines(/batch failed|sweep failed|could not start/)).toBe(0);
  const ms = h.delays(ids, consumer);
  const result = h.computeRow(name, ids, consumer, `p50 ${percentile(ms, 0.5)} ms, p99 ${percentile(ms, 0.99)} ms`);
  h.recordRow(result);
  h.expectNoLoss(result);
  expect(result.duplicates).toBe(0);
  expect(b.log()).not.toMatch(/unsupported startup parameter/);
  return { worker, result, ms };
}

it(
  "11a. through PgBouncer (transaction mode), LISTEN on a direct connection: every message delivered at LISTEN speed",
  async () => {
    const b = await bouncer();
    const { worker, ms } = await scenario("11a. PgBouncer; LISTEN on --listen-url (direct)", b, ["--listen-url", url]);
    expect(worker.countLines(/LISTEN/)).toBe(0);
    // Woken by NOTIFY, not by the sweeper (which leaves rows younger than 5 s): generous for shared cores.
    expect(percentile(ms, 0.5)).toBeLessThan(1_000);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
  },
  h.TEST_TIMEOUT,
);

it(
  "11b. through PgBouncer without LISTEN: the sweeper delivers every message",
  async () => {
    const b = await bouncer();
    const { worker, ms } = await scenario("11b. PgBouncer; --no-listen (sweeper every 1 s)", b, ["--no-listen"]);
    // Swept every second with no minimum age: at most about one interval behind.
    expect(percentile(ms, 0.99)).toBeLessThan(5_000);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
  },
  h.TEST_TIMEOUT,
);

it(
  "11c. LISTEN through PgBouncer by mistake: the LISTEN check says so as an error, and the sweeper delivers",
  async () => {
    const b = await bouncer();
    const { worker } = await scenario("11c. PgBouncer; LISTEN through the pooler (misconfigured)", b, [
      "--listen-check-interval-ms",
      "500",
    ]);
    // An app keeps using the pooler, as in production: on an idle pooler the LISTEN's own server connection is handed
    // back to it for its check, which then passes. The stream above is not enough on its own: on a quiet machine its
    // queries can all run one at a time on the LISTEN's server connection (CI once saw no loss in 30 s after it).
    const app = newPool(b.url(url), 4);
    let busy = true;
    const loops = Array.from({ length: 4 }, async () => {
      while (busy) await app.query("SELECT pg_sleep(0.005)").catch(() => {});
    });
    defer(async () => {
      busy = false;
      await Promise.all(loops);
      await app.end();
    });
    await worker.waitForLine(/LISTEN connection lost.*transaction-mode pooler/, 30_000);
    // Lost again and again: the count grows (no connection lives a minute), and from the third loss in a row it is an
    // error that says what to do.
    await worker.waitForLine(/ERROR LISTEN connection lost; reconnecting attempt=3 .*hint=.*--listen-url/, 30_000);
    expect(worker.countLines(/LISTEN connection lost; reconnecting attempt=1 /)).toBe(1);
    expect((await h.killProc(worker, "SIGTERM")).code).toBe(0);
  },
  h.TEST_TIMEOUT,
);

// The LISTEN connection's liveness, proven without the sweeper: its interval is 10 minutes here, so every message
// that arrives in time was published because LISTEN (or its reconnection) woke the relay.
import { getEventListeners } from "node:events";
import { afterAll, expect, it } from "vitest";
import { createRelay, outbox, type RelayEvent } from "../../src/index.js";
import { type ListenerOptions, OutboxListener } from "../../src/relay/listener.js";
import { outboxNames } from "../../src/sql/names.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import { type Pgbouncer, startPgbouncer } from "../support/pgbouncer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const prisma = base.$extends(outbox({ exchange: "mem", queue: false }));
const proxies: TcpProxy[] = [];
const listeners: OutboxListener[] = [];
const bouncers: Pgbouncer[] = [];
const closers: Array<() => Promise<void>> = [];

// Relays made here are tracked and stopped first; the rest after them, in this order.
const relays = useTestRelays({}, async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
  await Promise.all(closers.splice(0).map((c) => c()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(bouncers.splice(0).map((b) => b.stop()));
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

const write = (n: number) =>
  prisma.$enqueue(Array.from({ length: n }, (_, i) => ({ routingKey: "k", payload: { i } })));

it("a LISTEN connection lost without a word (no reset, no FIN) is noticed by its check and replaced: NOTIFY wakes the relay again", async () => {
  const u = new URL(url);
  const proxy = await startTcpProxy({ targetHost: u.hostname, targetPort: Number(u.port || 5432) });
  proxies.push(proxy);
  const transport = new MemoryTransport();
  const events: RelayEvent[] = [];
  const r = createRelay({
    databaseUrl: url,
    listenUrl: proxy.url(url), // only LISTEN goes through the proxy
    transport,
    queue: false,
    logger: false,
    sweepIntervalMs: 600_000,
    listenCheckIntervalMs: 300,
  });
  relays.track(r);
  r.onEvent((e) => events.push(e));
  await r.start();

  await write(3);
  await expect.poll(() => transport.published.length, { timeout: 5_000 }).toBe(3);

  // The LISTEN connection now hangs for good, as after a NAT forgot it; TCP keepalive would take minutes to tell.
  proxy.strand();
  await expect.poll(() => events.some((e) => e.type === "listen-reconnecting"), { timeout: 10_000 }).toBe(true);
  const lost = events.find((e) => e.type === "listen-reconnecting") as Extract<
    RelayEvent,
    { type: "listen-reconnecting" }
  >;
  expect(lost.error.message).toMatch(/LISTEN check: a NOTIFY to itself did not come back/);

  // Written after the new LISTEN is up (its first check passed): only its NOTIFY can wake the relay in time.
  const reconnectedAt = events.length;
  await new Promise((res) => setTimeout(res, 1_000));
  expect(events.slice(reconnectedAt).filter((e) => e.type === "listen-reconnecting")).toEqual([]);
  await write(5);
  await expect.poll(() => transport.published.length, { timeout: 5_000 }).toBe(8);
});

const terminated = new Set<number>();

/**
 * The backend of the listener's LISTEN session, once it is listening (its last statement is the LISTEN). A backend
 * this test terminated may still be listed for a moment: it is not the one.
 */
async function listeningPid(): Promise<number> {
  for (;;) {
    const r = await pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
       AND application_name = 'prisma-outbox listener' AND query LIKE 'LISTEN %' AND NOT pid = ANY($1::int[])`,
      [[...terminated]],
    );
    if (r.rows.length === 1) return r.rows[0]!.pid;
    if (r.rows.length > 1) throw new Error(`${r.rows.length} LISTEN sessions, expected one`);
    await new Promise((res) => setTimeout(res, 2));
  }
}

async function terminate(pid: number): Promise<void> {
  terminated.add(pid);
  await pool.query("SELECT pg_terminate_backend($1)", [pid]);
}

function listener(options: Partial<ListenerOptions>, attempts: number[]): OutboxListener {
  const l = new OutboxListener(
    {
      source: { kind: "config", config: { connectionString: url } },
      names: outboxNames(),
      checkIntervalMs: 60_000,
      backoff: { baseMs: 1, maxMs: 5 },
      ...options,
    },
    { onNotify() {}, onReconnecting: (attempt) => attempts.push(attempt) },
  );
  listeners.push(l);
  return l;
}

it("300 LISTEN reconnects leave no abort listener behind (flat count, no MaxListenersExceededWarning)", async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on("warning", onWarning);
  try {
    const attempts: number[] = [];
    const l = listener({ stableAfterMs: 0 }, attempts);
    await l.start();
    await listeningPid();
    const count = () => getEventListeners(l.closeSignal, "abort").length;
    const before = count();
    let most = before;
    for (let i = 1; i <= 300; i++) {
      // The backend is terminated under the listening session, as a pooler or a failover would end it; only once its
      // LISTEN has answered (a backend killed while still connecting is a failed attempt, which continues the row).
      await expect.poll(() => l.status().listening, { timeout: 5_000, interval: 2 }).toBe(true);
      await terminate(await listeningPid());
      await expect.poll(() => attempts.length, { timeout: 5_000, interval: 2 }).toBe(i);
      most = Math.max(most, count());
    }
    await listeningPid();
    await new Promise((res) => setImmediate(res)); // process warnings are emitted on the next tick
    const exceeded = warnings.filter((w) => w.name === "MaxListenersExceededWarning").map(String);
    // At most one more while a turn changes hands (the backoff's wait), and back to where it was.
    const result = { reconnects: attempts.length, grewAtMostOne: most - before <= 1, after: count(), exceeded };
    expect(result).toEqual({ reconnects: 300, grewAtMostOne: true, after: before, exceeded: [] });
    // Each connection lived longer than stableAfterMs (0): every loss was the first of its row.
    expect(new Set(attempts)).toEqual(new Set([1]));
  } finally {
    process.off("warning", onWarning);
  }
}, 120_000);

it("losses count in a row while connections die young, and start again from 1 after one lived stableAfterMs", async () => {
  const attempts: number[] = [];
  const l = listener({ stableAfterMs: 1_000 }, attempts);
  await l.start();
  for (let i = 1; i <= 4; i++) {
    await terminate(await listeningPid());
    await expect.poll(() => attempts.length, { timeout: 5_000, interval: 5 }).toBe(i);
  }
  expect(attempts).toEqual([1, 2, 3, 4]);
  await listeningPid();
  // pg_stat_activity shows the LISTEN once it is sent; the listener says so once its answer is read (seen failing once).
  await expect.poll(() => l.status().listening, { timeout: 10_000, interval: 2 }).toBe(true);
  expect(l.status()).toMatchObject({ listening: true, lostInARow: 4 });
  expect(l.status().lastError).toBeInstanceOf(Error);
  // Lived long enough: it works again, and the next loss is a first one.
  await new Promise((res) => setTimeout(res, 1_100));
  expect(l.status()).toEqual({ listening: true, lostInARow: 0, lastError: undefined });
  await terminate(await listeningPid());
  await expect.poll(() => attempts.length, { timeout: 5_000, interval: 5 }).toBe(5);
  expect(attempts[4]).toBe(1);
});

// PgBouncer comes from the pretest step (scripts/test-prerequisites.mjs): a missing one fails here, never skips.
it("LISTEN through a transaction-mode pooler: losses grow, escalate to an error that says to use --listen-url, shown in health; the sweeper delivers", async () => {
  const b = await startPgbouncer(url);
  bouncers.push(b);
  // Other sessions through the pooler, as an app's: the LISTEN's server connection goes to them between the
  // listener's transactions, so its check's NOTIFY runs elsewhere and the notifications reach someone else.
  const traffic = newPool(b.url(url), 4);
  let busy = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (busy) await traffic.query("SELECT pg_sleep(0.005)").catch(() => {});
  });
  closers.push(async () => {
    busy = false;
    await Promise.all(loops);
    await traffic.end();
  });
  const transport = new MemoryTransport();
  const events: RelayEvent[] = [];
  const logged: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
  const log =
    (level: string) =>
    (message: string, fields: Record<string, unknown> = {}) =>
      logged.push({ level, message, fields });
  const r = createRelay({
    databaseUrl: b.url(url), // the mistake: the pooler's URL, and no listenUrl
    transport,
    queue: false,
    logger: { info: log("info"), warn: log("warn"), error: log("error") },
    sweepIntervalMs: 200,
    listenCheckIntervalMs: 200,
  });
  relays.track(r);
  r.onEvent((e) => events.push(e));
  await r.start();

  const attempts = () => events.flatMap((e) => (e.type === "listen-reconnecting" ? [e.attempt] : []));
  // Each connection LISTENs fine and fails its check 2 intervals later: never stable, so the count keeps growing.
  await expect.poll(() => attempts().length, { timeout: 20_000 }).toBeGreaterThanOrEqual(4);
  expect(attempts().slice(0, 4)).toEqual([1, 2, 3, 4]);

  const lost = logged.filter((l) => l.message === "LISTEN connection lost; reconnecting");
  expect(lost.slice(0, 2).map((l) => l.level)).toEqual(["warn", "warn"]);
  expect(lost.slice(2, 4).map((l) => l.level)).toEqual(["error", "error"]);
  expect(String(lost[2]!.fields.error)).toMatch(/NOTIFY to itself did not come back/);
  expect(String(lost[2]!.fields.hint)).toMatch(/transaction-mode pooler.*--listen-url/);

  const health = await r.health();
  expect(health.ok).toBe(true); // messages still flow, through the sweeper
  expect(health.listen?.lostInARow).toBeGreaterThanOrEqual(3);
  expect(health.warnings).toHaveLength(1);
  expect(health.warnings[0]).toMatch(/LISTEN lost \d+ times in a row .*--listen-url/);

  await write(3);
  await expect.poll(() => transport.published.length, { timeout: 15_000 }).toBe(3);
}, 60_000);

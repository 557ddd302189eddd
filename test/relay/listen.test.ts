// The LISTEN connection's liveness, proven without the sweeper: its interval is 10 minutes here, so every message
// that arrives in time was published because LISTEN (or its reconnection) woke the relay.
import { afterAll, afterEach, expect, it } from "vitest";
import { createRelay, outbox, type Relay, type RelayEvent } from "../../src/index.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const prisma = base.$extends(outbox({ exchange: "mem", queue: false }));
const relays: Relay[] = [];
const proxies: TcpProxy[] = [];

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
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
  relays.push(r);
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

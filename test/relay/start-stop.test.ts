// start() that fails at any step, and stop() during any step: the relay says why, releases everything it opened and
// leaves nothing running (no connection to the database, no LISTEN, no attached queue). Real PostgreSQL and RabbitMQ;
// TCP proxies make the steps hang where a test needs them to.
import { afterAll, describe, expect, inject, it } from "vitest";
import { defaultOutboxQueue, OutboxConfigError, OutboxError, OutboxStartError, type Relay } from "../../src/index.js";
import { MemoryTransport } from "../../src/transport/memory.js";
import { createTestDatabase } from "../support/database.js";
import { startPgbouncer } from "../support/pgbouncer.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const proxies: TcpProxy[] = [];
const database = new URL(url);

const { relay } = useTestRelays({ databaseUrl: url, amqpUrl, queue: false, logger: false }, () =>
  Promise.all(proxies.splice(0).map((p) => p.close())),
);
afterAll(() => pool.end());

/** The relay's connections (pool and LISTEN) to the test database. */
async function relayBackends(db = pool): Promise<number> {
  const r = await db.query(
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'prisma-outbox%' AND datname = current_database()",
  );
  return Number(r.rows[0].count);
}

/** Nothing of the relay left: no connection to the database (closing sockets may take a moment to be seen). */
async function expectNothingLeft(r: Relay, db = pool): Promise<void> {
  expect(r.state).toBe("stopped");
  await expect.poll(() => relayBackends(db), { timeout: 5_000 }).toBe(0);
}

async function proxyTo(target: string): Promise<TcpProxy> {
  const u = new URL(target);
  const p = await startTcpProxy({ targetHost: u.hostname, targetPort: Number(u.port || 5432) });
  proxies.push(p);
  return p;
}

function withPath(target: string, path: string, user?: string): string {
  const u = new URL(target);
  u.pathname = path;
  if (user) u.username = user;
  return u.toString();
}

describe("start() fails fast, says why, and leaves nothing running", () => {
  it("a database that does not exist: OutboxConfigError with 3D000", async () => {
    const r = relay({ databaseUrl: withPath(url, "/prisma_outbox_no_such_db") });
    const started = Date.now();
    const error = await r.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxConfigError);
    expect(String(error)).toMatch(/3D000/);
    expect(String(error)).toMatch(/check the user, password and database name/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.state).toBe("stopped");
  });

  it("a role that does not exist (the server refuses the login): OutboxConfigError with its 28xxx code", async () => {
    const r = relay({ databaseUrl: withPath(url, database.pathname, "prisma_outbox_nobody") });
    const error = await r.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxConfigError);
    expect(String(error)).toMatch(/\(28[0-9A-Z]{3}\)/);
    expect(r.state).toBe("stopped");
  });

  it("a wrong password (PgBouncer with md5 auth in front: the test server trusts everyone): OutboxConfigError with the code", async () => {
    const bouncer = await startPgbouncer(url, { password: "right-password" });
    try {
      const wrong = new URL(bouncer.url(url));
      wrong.password = "wrong-password";
      const r = relay({ databaseUrl: wrong.toString() });
      const error = await r.start().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OutboxConfigError);
      // PgBouncer's code for it is 08P01 (PostgreSQL's own is 28P01).
      expect(String(error)).toMatch(/password authentication failed \((08P01|28P01)\)/);
      expect(String(error)).not.toContain("wrong-password");
      expect(r.state).toBe("stopped");
    } finally {
      await bouncer.stop();
    }
  });

  it("nothing listening on the database's port: OutboxStartError with ECONNREFUSED, at once", async () => {
    const p = await proxyTo(url);
    const closed = p.url(url);
    await p.close(); // the port is free now: connections are refused
    const r = relay({ databaseUrl: closed });
    const started = Date.now();
    const error = await r.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxStartError);
    expect((error as OutboxStartError).code).toBe("ECONNREFUSED");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.state).toBe("stopped");
  });

  it("the outbox table missing: no connection left open", async () => {
    const db = await createTestDatabase(inject("databaseUrl"), "template0");
    const other = newPool(db.url);
    try {
      const r = relay({ databaseUrl: db.url });
      await expect(r.start()).rejects.toThrow(/outbox_message does not exist/);
      await expectNothingLeft(r, other);
    } finally {
      await other.end();
      await db.drop();
    }
  });

  it("the default queue already attached to another relay: refused before anything is opened", async () => {
    const queue = defaultOutboxQueue;
    const first = relay({ queue, transport: new MemoryTransport() });
    await first.start();
    const before = await relayBackends();
    const second = relay({ queue, transport: new MemoryTransport() });
    await expect(second.start()).rejects.toBeInstanceOf(OutboxConfigError);
    expect(second.state).toBe("stopped");
    expect(await relayBackends()).toBe(before);
    expect(queue.attached).toBe(true); // still the first relay's
    await first.stop();
    expect(queue.attached).toBe(false);
  });

  it("the broker refusing the credentials: the database pool is closed again", async () => {
    const u = new URL(amqpUrl);
    u.username = "nobody";
    u.password = "wrong";
    const r = relay({ amqpUrl: u.toString() });
    await expect(r.start()).rejects.toThrow(/refused the credentials/);
    await expectNothingLeft(r);
  });

  it("a listenUrl that does not answer: start() fails, the pool and the broker connection closed", async () => {
    const p = await proxyTo(url);
    const closed = p.url(url);
    await p.close();
    const r = relay({ listenUrl: closed, transport: new MemoryTransport() });
    const error = await r.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxStartError);
    expect(String(error)).toMatch(/could not LISTEN \(on `listenUrl`.*ECONNREFUSED/);
    await expectNothingLeft(r);
  });
});

describe("stop() during each step of start()", () => {
  /** Starts, waits until `ready` says the step is under way, stops: both settle quickly and nothing is left. */
  async function stopDuring(r: Relay, ready: () => Promise<boolean>): Promise<void> {
    const starting = r.start().catch((e: unknown) => e);
    await expect.poll(ready, { timeout: 10_000 }).toBe(true);
    const t = Date.now();
    await r.stop();
    expect(Date.now() - t).toBeLessThan(3_000);
    const error = await starting;
    expect(error).toBeInstanceOf(OutboxError);
    expect(String(error)).toMatch(/stopped while it was starting/);
    await expectNothingLeft(r);
  }

  it("while connecting to a database that does not answer", async () => {
    const p = await proxyTo(url);
    p.blackhole();
    const r = relay({ databaseUrl: p.url(url) });
    await stopDuring(r, async () => p.connections > 0);
  });

  it("while connecting to a broker that does not answer", async () => {
    const u = new URL(amqpUrl);
    const p = await startTcpProxy({ targetHost: u.hostname, targetPort: Number(u.port || 5672) });
    proxies.push(p);
    p.blackhole();
    const r = relay({ amqpUrl: p.url(amqpUrl) });
    await stopDuring(r, async () => p.connections > 0);
  });

  it("while LISTEN connects to a listenUrl that does not answer", async () => {
    const p = await proxyTo(url);
    p.blackhole();
    const r = relay({ listenUrl: p.url(url), transport: new MemoryTransport() });
    await stopDuring(r, async () => p.connections > 0);
  });
});

// What the relay connects with: a URL, a pg connection config, or the app's own pg.Pool (for its batches and for
// LISTEN); and what `relay.options` shows of them (never a password).
import { inspect } from "node:util";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRelay, OutboxConfigError, outbox, type Relay } from "../../src/index.js";
import { OutboxListener } from "../../src/relay/listener.js";
import { outboxNames } from "../../src/sql/names.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { passwordUrlForms } from "../support/url-forms.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const probe = newPool(url);
const base = newPrismaClient(url);
const { relay, defer } = useTestRelays({ amqpUrl, queue: false });

/** The URL as a pg config object, without a URL anywhere. */
function configOf(connectionString: string): pg.PoolConfig {
  const u = new URL(connectionString);
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    database: u.pathname.slice(1),
    // pg accepts a function (e.g. a short-lived IAM token); it must never be shown.
    password: async () => decodeURIComponent(u.password) || "pw-from-a-function",
  };
}

/** Sessions of this database currently in LISTEN (their last statement), by application name. */
async function listeners(): Promise<string[]> {
  const r = await probe.query(
    `SELECT application_name FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'`,
  );
  return r.rows.map((row) => row.application_name as string);
}

/**
 * Writes `n` messages from a client without in-process queue, with the relay's sweeper at a minute: only LISTEN can
 * deliver them within the wait. Returns when they all arrived.
 */
async function deliveredByListen(r: Relay, n: number): Promise<void> {
  const c = await startCountingConsumer(amqpUrl, uniqueName("conn"));
  defer(() => c.close());
  await r.start();
  const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
  await prisma.$enqueue(Array.from({ length: n }, (_, i) => ({ routingKey: "k", payload: i })));
  await c.waitForDistinct(n, 10_000);
  await expect.poll(() => r.stats().published).toBe(n);
  expect(c.duplicates).toBe(0);
}

afterAll(async () => {
  await base.$disconnect();
  await probe.end();
});

describe("the relay's database", () => {
  it("a pg connection config (host, user, a password function): batches and LISTEN use it", async () => {
    const r = relay({ database: configOf(url), listen: true, sweepIntervalMs: 60_000 });
    await deliveredByListen(r, 30);
    expect(await listeners()).toContain("prisma-outbox listener");
  });

  it("the app's pg.Pool: LISTEN holds one of its clients; stop() gives it back destroyed and leaves the pool usable", async () => {
    const appPool = new pg.Pool({ connectionString: url, max: 4, application_name: "the-app" });
    appPool.on("error", () => {});
    defer(() => appPool.end());
    const r = relay({ database: appPool, listen: true, sweepIntervalMs: 60_000 });
    await deliveredByListen(r, 30);
    // The relay made no connection of its own: the listener and the batches were the app's pool's clients.
    expect(await listeners()).toEqual(["the-app"]);
    const relaySessions = await probe.query(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'prisma-outbox%'",
    );
    expect(relaySessions.rows[0].count).toBe("0");
    expect(appPool.totalCount).toBeGreaterThanOrEqual(2);

    // LISTEN's session terminated: the relay takes another client of the pool and listens again (the sweeper waits
    // a minute, so only a new LISTEN delivers the next write).
    await probe.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
    );
    await expect.poll(listeners, { timeout: 10_000 }).toEqual(["the-app"]);
    const c = await startCountingConsumer(amqpUrl, uniqueName("conn-again"));
    defer(() => c.close());
    await base.$extends(outbox({ exchange: c.exchange, queue: false })).$enqueue({ routingKey: "k", payload: "again" });
    await c.waitForDistinct(1, 10_000);

    await r.stop();
    // The LISTEN session was destroyed, not returned to the pool; the pool itself is the app's and still works.
    await expect.poll(listeners).toEqual([]);
    expect((await appPool.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    expect(appPool.ending).toBe(false);
  });

  it("the app's pg.Pool of one client with listen: false: the sweeper delivers, nothing waits for a second client", async () => {
    const appPool = new pg.Pool({ connectionString: url, max: 1 });
    appPool.on("error", () => {});
    defer(() => appPool.end());
    const c = await startCountingConsumer(amqpUrl, uniqueName("conn-pool"));
    defer(() => c.close());
    const r = relay({ database: appPool, listen: false, sweepIntervalMs: 50, sweepMinAgeMs: 0 });
    await r.start();
    const prisma = base.$extends(outbox({ exchange: c.exchange, queue: false }));
    await prisma.$enqueue(Array.from({ length: 10 }, (_, i) => ({ routingKey: "k", payload: i })));
    await c.waitForDistinct(10, 10_000);
    expect(await listeners()).toEqual([]);
  });

  it("the config's TLS settings reach both the batches' pool and the LISTEN session", async () => {
    // This server has ssl off: a config that requires TLS fails on every connection with PostgreSQL's answer, which
    // proves the setting was used (a URL would have connected in plain text).
    const sslConfig = { ...configOf(url), ssl: { rejectUnauthorized: false } };
    const seen: string[] = [];
    const listener = new OutboxListener(
      { source: { kind: "config", config: sslConfig }, names: outboxNames(), checkIntervalMs: 5_000 },
      {
        onNotify: () => seen.push("notified"),
        onReconnecting: (_attempt, _delayMs, error) => seen.push(error.message),
      },
    );
    // The first LISTEN failing fails start() (a wrong listenUrl is said at start, not retried in silence).
    seen.push(
      await listener.start().then(
        () => "started",
        (e: Error) => e.message,
      ),
    );
    await listener.close();
    expect(seen[0]).toMatch(/does not support SSL/);
    expect(seen).not.toContain("notified");

    const warnings: string[] = [];
    const logger = { info() {}, error: (m: string, f?: object) => warnings.push(`${m} ${JSON.stringify(f)}`) };
    const r = relay({
      database: sslConfig,
      listen: false,
      sweepIntervalMs: 20,
      logger: { ...logger, warn: logger.error },
    });
    // Whether start() fails fast on the database or the sweeper reports it, PostgreSQL's refusal must surface.
    const started = await r.start().then(
      () => "",
      (e: Error) => e.message,
    );
    if (!started) await expect.poll(() => warnings.join("\n"), { timeout: 5_000 }).toMatch(/does not support SSL/);
    else expect(started).toMatch(/does not support SSL/);
  });

  it.each([
    ["a URL and a config", { databaseUrl: url, database: {} }, /`databaseUrl` or `database`, not both/],
    ["neither", {}, /Expected `databaseUrl` \(a postgres:\/\/ URL\) or `database`/],
    [
      "a URL as database",
      { database: "postgresql://x" },
      /`database` to be a pg connection config object or a pg.Pool, got string/,
    ],
    ["a pg.Client", { database: new pg.Client() }, /a single pg.Client cannot serve/],
    [
      "a MySQL URL in the config",
      { database: { connectionString: "mysql://u:pw-secret@h/db" } },
      /`database.connectionString` to be a postgres/,
    ],
    ["max 0", { database: { host: "h", max: 0 } }, /`database.max` to be an integer >= 1, got 0/],
  ])("createRelay() given %s throws OutboxConfigError that names the fix", (_, options, message) => {
    const make = () => createRelay({ amqpUrl, queue: false, ...(options as object) });
    expect(make).toThrow(OutboxConfigError);
    expect(make).toThrow(message);
    expect(make).not.toThrow(/pw-secret/);
  });

  it("a pool of max 1 cannot both LISTEN and run batches: refused unless listen is false", () => {
    const small = new pg.Pool({ connectionString: url, max: 1 });
    defer(() => small.end());
    expect(() => createRelay({ database: small, amqpUrl })).toThrow(/at least 2 clients.*`listen: false`/);
    expect(() => createRelay({ database: small, amqpUrl, listen: false })).not.toThrow();
  });
});

describe("relay.options", () => {
  const secrets = ["pw-db-secret", "pw-mq-secret", "guest:guest", "tls-key-secret", "pw-config-secret"];
  const leaks = (value: unknown) => {
    const shown = `${JSON.stringify(value)}\n${inspect(value, { depth: 10, showHidden: true })}`;
    return secrets.filter((s) => shown.includes(s));
  };

  it("shows the URLs with their passwords redacted, and the relay still connects with the real ones", async () => {
    const dbUrl = new URL(url);
    dbUrl.password = "pw-db-secret"; // trust authentication here: any password connects
    const r = relay({ databaseUrl: dbUrl.toString(), amqpUrl, listen: false });
    expect(r.options.databaseUrl).toBe(dbUrl.toString().replace("pw-db-secret", "***"));
    expect(r.options.database).toBe(r.options.databaseUrl);
    expect(r.options.amqpUrl).toBe(amqpUrl.replace("guest:guest", "guest:***"));
    expect(leaks(r.options)).toEqual([]);
    expect(leaks(r)).toEqual([]);
    // The broker refuses a wrong password: starting proves the relay kept the real one.
    await r.start();
    expect(r.state).toBe("running");
    expect(leaks(r)).toEqual([]);
  });

  it.each(passwordUrlForms("pw-db-secret"))(
    "databaseUrl with a password in %s: shown without it, as listenUrl too",
    (_, databaseUrl, shown) => {
      const r = relay({ databaseUrl, listenUrl: databaseUrl, amqpUrl: "amqp://u:x@pw-mq-secret#t@mq.example/v" });
      expect(r.options.databaseUrl).toBe(shown);
      expect(r.options.listenUrl).toBe(shown);
      expect(r.options.amqpUrl).toBe("amqp://u:***@mq.example/v");
      expect(leaks(r.options)).toEqual([]);
      expect(leaks(r)).toEqual([]);
    },
  );

  it("shows a config object without its password, TLS key or connection string password", () => {
    const r = relay({
      database: {
        connectionString: "postgresql://u:pw-db-secret@db.example/app",
        password: "pw-config-secret",
        ssl: { rejectUnauthorized: true, key: "tls-key-secret" },
      },
      amqpUrl: "amqps://svc:pw-mq-secret@mq.example/vhost",
    });
    expect(leaks(r.options)).toEqual([]);
    expect(leaks(r)).toEqual([]);
    expect(r.options.database).toContain("db.example");
    expect(r.options.databaseUrl).toBeUndefined();
    expect(r.options.amqpUrl).toBe("amqps://svc:***@mq.example/vhost");
  });

  it("shows the app's pool as such, not the pool object (which holds its password)", () => {
    const appPool = new pg.Pool({ connectionString: "postgresql://u:pw-db-secret@db.example/app" });
    defer(() => appPool.end());
    const r = relay({ database: appPool });
    expect(r.options.database).toBe("pg.Pool (the app's)");
    expect(leaks(r.options)).toEqual([]);
    expect(leaks(r)).toEqual([]);
  });
});

// The inbox as the relay's mirror: the relay's words (keyAfterDeadLetter, dead-lettered, attempts) with the old ones
// still working for one release; the relay's connection forms (a URL, a pg config, the app's pg.Pool, never ended by
// the inbox); the relay's start-error rule (OutboxStartError when waiting may fix it, OutboxConfigError when a person
// must change something).
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { resolveInboxOptions } from "../../src/inbox/options.js";
import { type InboxEvent, type InboxOptions, inbox, OutboxConfigError, OutboxStartError } from "../../src/index.js";
import { recordEffect, useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { until } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const databaseUrl = await useTestDatabase();
const pool = newPool(databaseUrl);
const prisma = newPrismaClient(databaseUrl);
const { channel, track, exchangeAndQueue } = await useInboxBroker(amqpUrl);

type Messages = { "order.created": { n: number; fail?: boolean } };

async function setUp(options: Partial<InboxOptions<Messages, typeof prisma, any>> = {}) {
  const { exchange, queue } = await exchangeAndQueue("mirror");
  const events: InboxEvent[] = [];
  const box = inbox<Messages, typeof prisma>({
    prisma,
    queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
    handlers: {
      effect: {
        on: "order.created",
        handle: async (message, tx) => {
          await recordEffect(tx, message, "effect");
          if (message.payload.fail) throw new Error("failing on purpose");
        },
      },
    },
    sweepIntervalMs: 100,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 50,
    logger: quiet,
    ...options,
  });
  box.onEvent((e) => events.push(e));
  track(box);
  const publish = (body: unknown, messageId = randomUUID()) => {
    channel.publish(exchange, "order.created", Buffer.from(JSON.stringify(body)), { messageId });
    return messageId;
  };
  return { box, events, publish };
}

beforeEach(async () => {
  await pool.query('TRUNCATE inbox_message, "Effect"');
});
afterAll(async () => {
  await prisma.$disconnect();
  await pool.end();
});

const base = {
  prisma,
  queue: { name: "q" },
  handlers: { h: { on: "x", handle: async () => {} } },
} as never as InboxOptions<unknown, unknown, unknown>;

describe("the relay's words, the old ones kept for one release", () => {
  it("keyAfterDeadLetter, and its deprecated name keyAfterDead", () => {
    expect(resolveInboxOptions(base).keyAfterDead).toBe("stop");
    expect(resolveInboxOptions({ ...base, keyAfterDeadLetter: "continue" }).keyAfterDead).toBe("continue");
    expect(resolveInboxOptions({ ...base, keyAfterDead: "continue" }).keyAfterDead).toBe("continue");
    expect(
      resolveInboxOptions({ ...base, keyAfterDead: "continue", keyAfterDeadLetter: "continue" }).keyAfterDead,
    ).toBe("continue");
    expect(() => resolveInboxOptions({ ...base, keyAfterDead: "stop", keyAfterDeadLetter: "continue" })).toThrow(
      /not both with different values/,
    );
    expect(() => resolveInboxOptions({ ...base, keyAfterDeadLetter: "skip" as never })).toThrow(
      /Expected `keyAfterDeadLetter` to be "stop" or "continue", got "skip"/,
    );
    expect(() => resolveInboxOptions({ ...base, keyAfterDead: "skip" as never })).toThrow(
      /Expected `keyAfterDead` to be "stop" or "continue", got "skip"/,
    );
  });

  it("events: dead-lettered, then the deprecated dead right after it; attempts, and the deprecated attempt", async () => {
    const { box, events, publish } = await setUp({ maxAttempts: 2 });
    await box.start({ databaseUrl, amqpUrl });
    const poison = publish({ n: 0, fail: true });
    const fine = publish({ n: 1 });
    await channel.waitForConfirms();
    // The poison and the fine one can be two batches stored by two INSERTs at once (receiver.ts, MAX_FLUSHES): the
    // poison may be dead before the fine one's row commits, so its handling is waited for too.
    await until(
      () => events.some((e) => e.type === "dead") && events.some((e) => e.type === "handled" && e.messageId === fine),
    );
    const about = events.filter((e) => "messageId" in e && (e.messageId === poison || e.messageId === fine));
    expect(about.map((e) => e.type).sort()).toEqual(["dead", "dead-lettered", "handled", "retry-scheduled"]);
    const deadAt = events.findIndex((e) => e.type === "dead");
    expect(events[deadAt - 1]).toMatchObject({
      type: "dead-lettered",
      messageId: poison,
      handler: "effect",
      attempts: 2,
    });
    expect(events[deadAt]).toMatchObject({
      type: "dead",
      messageId: poison,
      handler: "effect",
      attempts: 2,
      attempt: 2,
    });
    expect((events[deadAt] as { error: Error }).error.message).toBe("failing on purpose");
    expect(events.find((e) => e.type === "retry-scheduled")).toMatchObject({ attempts: 1, attempt: 1 });
    expect(events.find((e) => e.type === "handled")).toMatchObject({ messageId: fine, attempts: 1, attempt: 1 });
  });

  it("logs like the relay: a constant message, the values in fields", async () => {
    const lines: Array<{ level: string; message: string; fields: Record<string, unknown> | undefined }> = [];
    const log = (level: string) => (message: string, fields?: Record<string, unknown>) =>
      void lines.push({ level, message, fields });
    const { box, publish } = await setUp({
      maxAttempts: 2,
      logger: { info: log("info"), warn: log("warn"), error: log("error") },
    });
    await box.start({ databaseUrl, amqpUrl });
    const poison = publish({ n: 0, fail: true });
    await channel.waitForConfirms();
    await until(() => lines.some((l) => l.message === "message dead-lettered"));
    expect(lines.filter((l) => l.message === "message dead-lettered")).toEqual([
      {
        level: "error",
        message: "message dead-lettered",
        fields: { messageId: poison, handler: "effect", attempts: 2, reason: "attempts", error: "failing on purpose" },
      },
    ]);
    expect(lines.find((l) => l.message === "handler failed; retry scheduled")).toMatchObject({
      level: "warn",
      fields: { messageId: poison, handler: "effect", attempts: 1, delayMs: expect.any(Number) },
    });
    for (const line of lines) expect(line.message).not.toContain(poison);
  });
});

describe("connection forms: a URL, a pg config, or the app's pg.Pool", () => {
  it("runs on the app's pg.Pool, and leaves it open and usable after stop()", async () => {
    const appPool = new pg.Pool({ connectionString: databaseUrl, max: 3 });
    try {
      const { box, publish } = await setUp();
      await box.start({ database: appPool, amqpUrl });
      const id = publish({ n: 1 });
      await channel.waitForConfirms();
      await until(
        async () => (await pool.query("SELECT 1 FROM inbox_message WHERE status = 'processed'")).rowCount === 1,
      );
      expect((await box.health()).ok).toBe(true);
      await box.stop();
      expect(appPool.ending).toBe(false);
      expect((await appPool.query("SELECT message_id FROM inbox_message")).rows).toEqual([{ message_id: id }]);
      // Nothing of the inbox's is left on it: its guard comes off with stop().
      expect(appPool.listenerCount("acquire")).toBe(0);
    } finally {
      await appPool.end();
    }
  });

  it("runs on a pg config", async () => {
    const { hostname, port, username, password, pathname } = new URL(databaseUrl);
    const { box, publish } = await setUp();
    await box.start({
      database: {
        host: hostname,
        port: Number(port),
        user: decodeURIComponent(username),
        password: decodeURIComponent(password),
        database: pathname.slice(1),
      },
      amqpUrl,
    });
    publish({ n: 1 });
    await channel.waitForConfirms();
    await until(
      async () => (await pool.query("SELECT 1 FROM inbox_message WHERE status = 'processed'")).rowCount === 1,
    );
  });

  it("takes exactly one of databaseUrl and database", async () => {
    const { box } = await setUp();
    await expect(box.start({ databaseUrl, database: { connectionString: databaseUrl }, amqpUrl })).rejects.toThrow(
      OutboxConfigError,
    );
    const other = (await setUp()).box;
    await expect(other.start({ amqpUrl } as never)).rejects.toThrow(/`databaseUrl`.*or `database`/);
  });
});

describe("start errors: OutboxStartError when waiting may fix it, OutboxConfigError when a person must act", () => {
  it("a database that is down: OutboxStartError", async () => {
    const { box } = await setUp();
    const down = databaseUrl.replace(/@[^/]+\//, "@127.0.0.1:1/");
    const error = await box.start({ databaseUrl: down, amqpUrl }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxStartError);
    expect((error as OutboxStartError).code).toBe("ECONNREFUSED");
  });

  it("a wrong password or database name: OutboxConfigError", async () => {
    const { box } = await setUp();
    const missing = new URL(databaseUrl);
    missing.pathname = `/no_such_db_${randomUUID().slice(0, 8)}`;
    const error = await box.start({ databaseUrl: missing.toString(), amqpUrl }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboxConfigError);
    expect(String(error)).toMatch(/3D000/);
  });

  it("a broker that is down: OutboxStartError; one that refuses the credentials: OutboxConfigError", async () => {
    const down = await (await setUp()).box
      .start({ databaseUrl, amqpUrl: "amqp://guest:guest@127.0.0.1:1" })
      .catch((e: unknown) => e);
    expect(down).toBeInstanceOf(OutboxStartError);
    const bad = amqpUrl.replace(/\/\/([^:]+):([^@]+)@/, "//$1:wrong-secret@");
    const refused = await (await setUp()).box.start({ databaseUrl, amqpUrl: bad }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OutboxConfigError);
    expect(String(refused)).not.toContain("wrong-secret");
  });
});

// `prisma-outbox inbox`, run as users run it: its own process, loading a handlers module of the user's.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { cliProcesses } from "../support/cli.js";
import { uniqueName } from "../support/consumer.js";
import { createTestDatabase } from "../support/database.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { until as waitFor } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const processes = cliProcesses();

const cli = (args: string[], env: Record<string, string | undefined> = {}) => processes.start(["inbox", ...args], env);

const until = (check: () => boolean | Promise<boolean>) => waitFor(check, 20_000, 25);

afterEach(() => {
  processes.killAll();
});
afterAll(() => pool.end());

describe("prisma-outbox inbox", () => {
  it("--help prints the options and exits 0", async () => {
    const { out, exited } = cli(["--help"]);
    expect(await exited).toBe(0);
    expect(out.stdout).toContain("--handlers <module>");
  });

  it("exits 2 with a message on missing options or a module without an inbox", async () => {
    const missing = cli([], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(await missing.exited).toBe(2);
    expect(missing.out.stderr).toContain("Expected --handlers <module>");
    const wrong = cli(["--handlers", "./test/support/consumer.ts"], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(await wrong.exited).toBe(2);
    expect(wrong.out.stderr).toContain("exports no inbox");
  });

  it("runs the module's inbox: handles what arrives once, and stops gracefully on SIGTERM (exit 0)", async () => {
    const exchange = uniqueName("cli.inbox.x");
    const queue = uniqueName("cli.inbox.q");
    const env = { DATABASE_URL: url, AMQP_URL: amqpUrl, INBOX_QUEUE: queue, INBOX_EXCHANGE: exchange };
    const { child, out, exited } = cli(["--handlers", "./test/cli/fixtures/inbox-handlers.ts"], env);
    await until(() => out.stdout.includes("inbox started"));
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createConfirmChannel();
    try {
      const ids = Array.from({ length: 50 }, () => randomUUID());
      for (const id of [...ids, ...ids]) {
        channel.publish(exchange, "order.created", Buffer.from('{"n":1}'), { messageId: id, persistent: true });
      }
      await channel.waitForConfirms();
      const effects = async () => Number((await pool.query('SELECT count(*) FROM "Effect"')).rows[0].count);
      await until(async () => (await effects()) >= 50);
      await new Promise((r) => setTimeout(r, 300));
      expect(await effects()).toBe(50);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(out.stdout).toMatch(/stopping/);
    } finally {
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    }
  });

  it("logs an invalid delivery once, an unusable ordering key once (structured), escaped; serves --metrics-host", async () => {
    const exchange = uniqueName("cli.inbox.x");
    const queue = uniqueName("cli.inbox.q");
    const env = {
      DATABASE_URL: url,
      AMQP_URL: amqpUrl,
      INBOX_QUEUE: queue,
      INBOX_EXCHANGE: exchange,
      OUTBOX_LOG_FORMAT: "json",
    };
    const args = [
      "--handlers",
      "./test/cli/fixtures/inbox-handlers.ts",
      "--metrics-port",
      "0",
      "--metrics-host",
      "127.0.0.2",
    ];
    const { child, out, exited } = cli(args, env);
    await until(() => out.stdout.includes("inbox started"));
    const listening = JSON.parse(out.stdout.split("\n").find((l) => l.includes("endpoints listening"))!);
    expect(listening.host).toBe("127.0.0.2");
    expect((await fetch(`http://127.0.0.2:${listening.port}/healthz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${listening.port}/healthz`)).rejects.toThrow();
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createConfirmChannel();
    try {
      const evil = "order.x\u001b[2J\u009b31m\u007f";
      const longKey = "k".repeat(300);
      const invalidId = randomUUID();
      const keyedId = randomUUID();
      // No handler takes this routing key: an invalid delivery, its routing key in the log's text.
      channel.publish(exchange, evil, Buffer.from("{}"), { messageId: invalidId, persistent: true });
      channel.publish(exchange, "order.created", Buffer.from('{"n":1}'), {
        messageId: keyedId,
        persistent: true,
        headers: { "x-ordering-key": longKey },
      });
      await channel.waitForConfirms();
      await until(() => out.stderr.includes(invalidId) && out.stderr.includes("ordering key dropped"));
      await new Promise((r) => setTimeout(r, 500));
      const lines = (out.stdout + out.stderr).split("\n").filter(Boolean);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
      for (const line of lines) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      const invalid = lines.filter((l) => l.includes(invalidId));
      expect(invalid).toHaveLength(1);
      expect(JSON.parse(invalid[0]!).msg).toContain("invalid delivery");
      const keyed = lines.filter((l) => l.includes("ordering key dropped"));
      expect(keyed).toHaveLength(1);
      expect(JSON.parse(keyed[0]!)).toMatchObject({ level: "warn", messageId: keyedId, keyBytes: 300 });
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    }
  });

  it("a database without the inbox table: exits 2 at start, saying what to run", async () => {
    const bare = await createTestDatabase(inject("databaseUrl"), "template1");
    try {
      const env = {
        DATABASE_URL: bare.url,
        AMQP_URL: amqpUrl,
        INBOX_QUEUE: uniqueName("q"),
        INBOX_EXCHANGE: uniqueName("x"),
      };
      const { out, exited } = cli(["--handlers", "./test/cli/fixtures/inbox-handlers.ts"], env);
      expect(await exited).toBe(2);
      expect(out.stderr).toMatch(/inbox_message does not exist/);
    } finally {
      await bare.drop();
    }
  });
});

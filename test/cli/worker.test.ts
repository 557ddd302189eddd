// The bundled worker, run as users run it: its own process, configured from the environment and flags.
import { connect } from "amqplib";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { outbox } from "../../src/index.js";
import { cliProcesses } from "../support/cli.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { migrateIntoSchema } from "../support/database.js";
import { newPrismaClient, useTestDatabase } from "../support/prisma.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const base = newPrismaClient(url);
const processes = cliProcesses();
const worker = processes.start;

afterEach(() => {
  processes.killAll();
});
afterAll(() => base.$disconnect());

describe("prisma-outbox worker", () => {
  it("--help prints the options and exits 0", async () => {
    const w = worker(["worker", "--help"]);
    expect(await w.exited).toBe(0);
    expect(w.out.stdout).toContain("Usage: prisma-outbox worker");
    expect(w.out.stdout).toContain("OUTBOX_BATCH_SIZE");
  });

  it("exits 2 with what to fix on bad configuration", async () => {
    const missing = worker(["worker"]);
    expect(await missing.exited).toBe(2);
    expect(missing.out.stderr).toContain("Set DATABASE_URL or --database-url");
    const bad = worker(["worker", "--batch-size", "0"], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(await bad.exited).toBe(2);
    expect(bad.out.stdout + bad.out.stderr).toContain("`batchSize` to be an integer >= 1, got 0");
    const unknown = worker(["publish"]);
    expect(await unknown.exited).toBe(2);
    expect(unknown.out.stderr).toContain('Unknown command "publish"');
  });

  it("refused credentials: exits non-zero and never prints the password", async () => {
    const u = new URL(amqpUrl);
    u.username = "nobody";
    u.password = "s3cret-pw";
    const w = worker(["worker"], { DATABASE_URL: url, AMQP_URL: u.toString() });
    expect(await w.exited).toBe(2);
    expect(w.out.stderr).toContain("refused the credentials");
    expect(w.out.stdout + w.out.stderr).not.toContain("s3cret-pw");
  });

  it("publishes, logs JSON lines, and exits 0 on SIGTERM after a graceful stop", async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("cli"));
    try {
      const w = worker(["worker", "--log-format", "json"], {
        DATABASE_URL: url,
        AMQP_URL: amqpUrl,
        OUTBOX_BATCH_SIZE: "100",
      });
      await expect.poll(() => w.out.stdout, { timeout: 20_000 }).toContain("relay started");
      const prisma = base.$extends(outbox({ exchange: consumer.exchange, queue: false }));
      await prisma.$enqueue(Array.from({ length: 250 }, (_, i) => ({ routingKey: "cli", payload: i })));
      await consumer.waitForDistinct(250, 15_000);
      w.child.kill("SIGTERM");
      expect(await w.exited).toBe(0);
      const lines = w.out.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.msg)).toEqual(["relay started", "stopping", "relay stopped"]);
      expect(lines.at(-1)).toMatchObject({ level: "info", published: 250 });
    } finally {
      await consumer.close();
    }
  });

  it("--exchange without a type exits 2 naming the accepted forms", async () => {
    const w = worker(["worker", "--exchange", "shop"], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(await w.exited).toBe(2);
    expect(w.out.stderr).toContain("NAME:TYPE or NAME:TYPE:durable or NAME:TYPE:transient");
    expect(w.out.stderr).toContain('got "shop" (the type is required)');
  });

  it("--schema relays the outbox of that schema, and :transient declares a non-durable exchange", async () => {
    const schema = "outbox_cli";
    await migrateIntoSchema(url, schema);
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("cli-schema"));
    const transient = uniqueName("cli-transient");
    const admin = await connect(amqpUrl);
    try {
      const w = worker(
        [
          "worker",
          "--schema",
          schema,
          "--exchange",
          `${consumer.exchange}:topic`,
          "--exchange",
          `${transient}:fanout:transient`,
        ],
        { DATABASE_URL: url, AMQP_URL: amqpUrl },
      );
      await expect.poll(() => w.out.stdout, { timeout: 20_000 }).toContain("relay started");
      const prisma = base.$extends(outbox({ exchange: consumer.exchange, schema, queue: false }));
      await prisma.$enqueue(Array.from({ length: 25 }, (_, i) => ({ routingKey: "cli", payload: i })));
      await consumer.waitForDistinct(25, 15_000);

      // The same declaration passes; a durable one is refused (406): the worker declared it transient.
      const same = await admin.createChannel();
      await same.assertExchange(transient, "fanout", { durable: false });
      await same.close();
      const durable = await admin.createChannel();
      durable.on("error", () => {});
      await expect(durable.assertExchange(transient, "fanout", { durable: true })).rejects.toThrow(
        /PRECONDITION_FAILED/,
      );
      w.child.kill("SIGTERM");
      expect(await w.exited).toBe(0);
    } finally {
      const cleanup = await admin.createChannel();
      await cleanup.deleteExchange(transient);
      await admin.close();
      await consumer.close();
    }
  });
});

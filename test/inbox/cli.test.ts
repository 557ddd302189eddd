// `prisma-outbox inbox` as the relay's worker: each dead-lettered message said once (the inbox logs it, with the CLI's
// logger; the CLI does not log it again), and the relay's exit codes at start (1 when waiting may fix it, 2 when a
// person must change something).
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import { afterAll, afterEach, expect, inject, it } from "vitest";
import { uniqueName } from "../support/consumer.js";
import { newPool, useTestDatabase } from "../support/prisma.js";
import { until } from "../support/wait.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});
afterAll(() => pool.end());

function cli(databaseUrl: string, exchange: string, queue: string) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "src/cli/main.ts", "inbox", "--handlers", "./test/inbox/fixtures/failing-handlers.ts"],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: databaseUrl,
        AMQP_URL: amqpUrl,
        INBOX_QUEUE: queue,
        INBOX_EXCHANGE: exchange,
        OUTBOX_LOG_FORMAT: "json",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  const out = { text: "" };
  child.stdout?.on("data", (d) => {
    out.text += d;
  });
  child.stderr?.on("data", (d) => {
    out.text += d;
  });
  const exited = once(child, "exit").then(([code]) => code as number);
  return { child, out, exited };
}

it("a database that is down exits 1 (waiting may fix it); one that does not exist exits 2", async () => {
  const down = cli(url.replace(/@[^/]+\//, "@127.0.0.1:1/"), uniqueName("inbox.cli.x"), uniqueName("inbox.cli.q"));
  expect(await down.exited).toBe(1);
  expect(down.out.text).toMatch(/could not start.*ECONNREFUSED/);
  const missing = new URL(url);
  missing.pathname = `/no_such_db_${randomUUID().slice(0, 8)}`;
  const wrong = cli(missing.toString(), uniqueName("inbox.cli.x"), uniqueName("inbox.cli.q"));
  expect(await wrong.exited).toBe(2);
  expect(wrong.out.text).toMatch(/could not start.*3D000/);
});

it("logs a dead-lettered message once, with its fields", async () => {
  const exchange = uniqueName("inbox.cli.x");
  const queue = uniqueName("inbox.cli.q");
  const { child, out, exited } = cli(url, exchange, queue);
  await until(() => out.text.includes("inbox started"), 20_000);
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createConfirmChannel();
    const messageId = randomUUID();
    channel.publish(exchange, "order.created", Buffer.from('{"n":1}'), { messageId });
    await channel.waitForConfirms();
    await until(
      async () => (await pool.query("SELECT 1 FROM inbox_message WHERE status = 'dead'")).rowCount === 1,
      20_000,
    );
    await new Promise((r) => setTimeout(r, 500)); // a second line, if any, would be written by now
    const about = out.text
      .split("\n")
      .filter((l) => l.includes(messageId))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const dead = about.filter((l) => l.level === "error");
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      msg: "message dead-lettered",
      messageId,
      handler: "failing",
      attempts: 2,
      error: "failing on purpose",
    });
    await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
  } finally {
    await connection.close();
  }
  child.kill("SIGTERM");
  expect(await exited).toBe(0);
});

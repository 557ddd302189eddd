// `prisma-outbox inbox` says each dead-lettered message once: the inbox logs it (with the CLI's logger), and the CLI
// does not log it again.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import { afterAll, afterEach, expect, inject, it } from "vitest";
import { uniqueName } from "../support/consumer.js";
import { newPool, useTestDatabase } from "../support/prisma.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});
afterAll(() => pool.end());

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

it("logs a dead-lettered message once, with its fields", async () => {
  const exchange = uniqueName("inbox.cli.x");
  const queue = uniqueName("inbox.cli.q");
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "src/cli/main.ts", "inbox", "--handlers", "./test/inbox/fixtures/failing-handlers.ts"],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: url,
        AMQP_URL: amqpUrl,
        INBOX_QUEUE: queue,
        INBOX_EXCHANGE: exchange,
        OUTBOX_LOG_FORMAT: "json",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  const exited = once(child, "exit").then(([code]) => code as number);
  await until(() => output.includes("inbox started"));
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createConfirmChannel();
    const messageId = randomUUID();
    channel.publish(exchange, "order.created", Buffer.from('{"n":1}'), { messageId });
    await channel.waitForConfirms();
    await until(async () => (await pool.query("SELECT 1 FROM inbox_message WHERE status = 'dead'")).rowCount === 1);
    await new Promise((r) => setTimeout(r, 500)); // a second line, if any, would be written by now
    const about = output
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

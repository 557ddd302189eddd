// --metrics-port of `prisma-outbox worker` and `prisma-outbox inbox`: /metrics, /healthz and /readyz served by the
// CLI process itself, against the real services; the broker reached through a TCP proxy that the test cuts.
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { outbox } from "../../src/index.js";
import { cliProcesses } from "../support/cli.js";
import { startCountingConsumer, uniqueName } from "../support/consumer.js";
import { newPool, newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const pool = newPool(url);
const base = newPrismaClient(url);
const processes = cliProcesses();
const cleanups: Array<() => Promise<unknown>> = [];

function cli(args: string[], env: Record<string, string | undefined>) {
  const { child, out, exited } = processes.start(args, { OUTBOX_LOG_FORMAT: "json", ...env });
  /** The port from the "listening" log line. */
  const port = async () => {
    await expect.poll(() => out.stdout, { timeout: 30_000 }).toContain("metrics and health endpoints listening");
    const line = out.stdout.split("\n").find((l) => l.includes("metrics and health endpoints listening"))!;
    return JSON.parse(line).port as number;
  };
  return { child, out, exited, port };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}
const status = (port: number, path: string) => async () => (await get(port, path)).status;

async function proxyToBroker(): Promise<TcpProxy> {
  const broker = new URL(amqpUrl);
  const proxy = await startTcpProxy({ targetHost: broker.hostname, targetPort: Number(broker.port || 5672) });
  cleanups.push(() => proxy.close());
  return proxy;
}

afterEach(async () => {
  processes.killAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await base.$disconnect();
  await pool.end();
});

describe("prisma-outbox worker --metrics-port", () => {
  it("serves /metrics, /healthz, /readyz; /readyz turns 503 while the broker is unreachable, and 200 again", async () => {
    const consumer = await startCountingConsumer(amqpUrl, uniqueName("cli-metrics"));
    cleanups.push(() => consumer.close());
    const proxy = await proxyToBroker();
    const w = cli(["worker", "--metrics-port", "0"], { DATABASE_URL: url, AMQP_URL: proxy.url(amqpUrl) });
    const port = await w.port();
    expect(await get(port, "/healthz")).toEqual({ status: 200, body: "ok\n" });
    await expect.poll(status(port, "/readyz"), { timeout: 20_000 }).toBe(200);
    const ready = JSON.parse((await get(port, "/readyz")).body);
    expect(ready).toMatchObject({
      ok: true,
      state: "running",
      database: { connected: true },
      broker: { connected: true },
    });

    const prisma = base.$extends(outbox({ exchange: consumer.exchange, queue: false }));
    await prisma.$enqueue(Array.from({ length: 25 }, (_, i) => ({ routingKey: "m", payload: i })));
    await consumer.waitForDistinct(25, 15_000);
    const published = `prisma_outbox_relay_published_total{messaging_destination_name="${consumer.exchange}"} 25`;
    await expect.poll(async () => (await get(port, "/metrics")).body, { timeout: 10_000 }).toContain(published);
    const metrics = await get(port, "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain("# TYPE prisma_outbox_relay_lag_seconds histogram");
    expect(metrics.body).toMatch(/prisma_outbox_relay_backlog\{state="due"\} \d+/);
    expect(metrics.body).toMatch(/prisma_outbox_relay_oldest_due_age_seconds \d/);
    expect(await get(port, "/nothing")).toMatchObject({ status: 404 });

    proxy.cut();
    await expect.poll(status(port, "/readyz"), { timeout: 20_000 }).toBe(503);
    const down = JSON.parse((await get(port, "/readyz")).body);
    expect(down).toMatchObject({ ok: false, broker: { connected: false } });
    expect(await get(port, "/healthz")).toMatchObject({ status: 200 }); // the process is up: no restart wanted
    proxy.restore();
    await expect.poll(status(port, "/readyz"), { timeout: 30_000 }).toBe(200);

    w.child.kill("SIGTERM");
    expect(await w.exited).toBe(0);
  });

  it("a bad --metrics-port or OUTBOX_METRICS_PORT exits 2 saying what to fix; a port in use exits 2", async () => {
    const bad = cli(["worker", "--metrics-port", "http"], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(await bad.exited).toBe(2);
    expect(bad.out.stderr).toContain('Expected --metrics-port to be a port number from 0 to 65535, got "http"');
    const env = cli(["worker"], { DATABASE_URL: url, AMQP_URL: amqpUrl, OUTBOX_METRICS_PORT: "70000" });
    expect(await env.exited).toBe(2);
    expect(env.out.stderr).toContain("Expected OUTBOX_METRICS_PORT to be a port number");
    const first = cli(["worker", "--metrics-port", "0"], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    const port = await first.port();
    const second = cli(["worker", "--metrics-port", String(port)], { DATABASE_URL: url, AMQP_URL: amqpUrl });
    expect(await second.exited).toBe(2);
    expect(second.out.stderr).toContain(`cannot serve --metrics-port ${port}`);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
  });
});

describe("prisma-outbox inbox --metrics-port", () => {
  it("serves the inbox's metrics and readiness; /readyz 503 while the broker is unreachable", async () => {
    const exchange = uniqueName("cli.metrics.x");
    const queue = uniqueName("cli.metrics.q");
    const proxy = await proxyToBroker();
    const box = cli(["inbox", "--handlers", "./test/cli/fixtures/inbox-handlers.ts", "--metrics-port", "0"], {
      DATABASE_URL: url,
      AMQP_URL: proxy.url(amqpUrl),
      INBOX_QUEUE: queue,
      INBOX_EXCHANGE: exchange,
    });
    const connection = await amqp.connect(amqpUrl);
    cleanups.push(async () => {
      const channel = await connection.createChannel();
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    });
    const port = await box.port();
    await expect.poll(status(port, "/readyz"), { timeout: 20_000 }).toBe(200);
    const channel = await connection.createConfirmChannel();
    for (let i = 0; i < 10; i++) {
      channel.publish(exchange, "order.created", Buffer.from('{"n":1}'), { messageId: randomUUID() });
    }
    await channel.waitForConfirms();
    const handled = `prisma_outbox_inbox_handled_total{messaging_destination_subscription_name="${queue}",messaging_consumer_group_name="record"} 10`;
    await expect.poll(async () => (await get(port, "/metrics")).body, { timeout: 15_000 }).toContain(handled);
    const body = (await get(port, "/metrics")).body;
    expect(body).toContain(
      `prisma_outbox_inbox_received_total{messaging_destination_subscription_name="${queue}",outcome="stored"} 10`,
    );
    expect(body).toContain("# TYPE prisma_outbox_inbox_handle_duration_seconds histogram");
    expect(body).toMatch(/prisma_outbox_inbox_backlog\{[^}]*state="due"\} 0/);

    proxy.cut();
    await expect.poll(status(port, "/readyz"), { timeout: 20_000 }).toBe(503);
    expect(JSON.parse((await get(port, "/readyz")).body)).toMatchObject({ ok: false, broker: { connected: false } });
    proxy.restore();
    await expect.poll(status(port, "/readyz"), { timeout: 30_000 }).toBe(200);
    box.child.kill("SIGTERM");
    expect(await box.exited).toBe(0);
  });
});

describe("the doctor's interval from the command line", () => {
  // This server runs with autovacuum = off on purpose, so the first periodic check finds autovacuum-disabled: seen in
  // /readyz (still 200) and the gauge (1 or 2: a warning or an error) within seconds only if the flag or variable reached the relay or inbox (the
  // default interval is 60 s).
  const seesDoctor = async (port: number, component: string) => {
    await expect
      .poll(async () => JSON.parse((await get(port, "/readyz")).body).doctor?.findings?.map((f: any) => f.check), {
        timeout: 15_000,
      })
      .toContain("autovacuum-disabled");
    expect((await get(port, "/readyz")).status).toBe(200);
    const metrics = (await get(port, "/metrics")).body;
    expect(metrics).toMatch(
      new RegExp(
        `prisma_outbox_doctor_warnings\\{(?=[^}]*check="autovacuum-disabled")(?=[^}]*component="${component}")[^}]*\\} [12]`,
      ),
    );
  };

  it("worker --doctor-interval-ms", async () => {
    const w = cli(["worker", "--metrics-port", "0", "--doctor-interval-ms", "300"], {
      DATABASE_URL: url,
      AMQP_URL: amqpUrl,
    });
    await seesDoctor(await w.port(), "relay");
    w.child.kill("SIGTERM");
    expect(await w.exited).toBe(0);
  });

  it("inbox with OUTBOX_DOCTOR_INTERVAL_MS", async () => {
    const exchange = uniqueName("cli.doctor.x");
    const queue = uniqueName("cli.doctor.q");
    const box = cli(["inbox", "--handlers", "./test/cli/fixtures/inbox-handlers.ts", "--metrics-port", "0"], {
      DATABASE_URL: url,
      AMQP_URL: amqpUrl,
      INBOX_QUEUE: queue,
      INBOX_EXCHANGE: exchange,
      OUTBOX_DOCTOR_INTERVAL_MS: "300",
    });
    cleanups.push(async () => {
      const connection = await amqp.connect(amqpUrl);
      const channel = await connection.createChannel();
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    });
    await seesDoctor(await box.port(), "inbox");
    box.child.kill("SIGTERM");
    expect(await box.exited).toBe(0);
  });
});

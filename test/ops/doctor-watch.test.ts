// The doctor's periodic checks inside a running relay and inbox (doctorIntervalMs): a transaction holding a snapshot
// on another connection shows in health().warnings and health().doctor (ok stays true: a restart fixes nothing), in
// the prisma_outbox.doctor.warnings gauge, and in the log once, however many checks see it; COMMIT clears all three,
// with one "fine again" line. Against the real PostgreSQL and RabbitMQ.
import type { DataPoint } from "@opentelemetry/sdk-metrics";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { startMetricsServer } from "../../src/cli/metrics-server.js";
import { type Inbox, inbox, OutboxConfigError, type Relay } from "../../src/index.js";
import { useInboxBroker } from "../support/inbox.js";
import { quiet } from "../support/logger.js";
import { disableTelemetry, registerMetrics } from "../support/otel.js";
import { newPrismaClient, useTestDatabase } from "../support/prisma.js";
import { useTestRelays } from "../support/relay.js";
import { sleep, until } from "../support/wait.js";

const amqpUrl = inject("amqpUrl");
const url = await useTestDatabase();
const prisma = newPrismaClient(url);
const broker = await useInboxBroker(amqpUrl);
const relays = useTestRelays({ databaseUrl: url, amqpUrl, queue: false });
let collect: ReturnType<typeof registerMetrics>["collect"];
beforeAll(() => {
  ({ collect } = registerMetrics());
});
const held: pg.Client[] = [];
afterEach(async () => {
  for (const c of held.splice(0)) await c.end().catch(() => {});
});
afterAll(async () => {
  disableTelemetry();
  await prisma.$disconnect();
});

// Fast checks, a low threshold, and the server's autovacuum = off left out (this server runs so on purpose).
const watch = {
  doctorIntervalMs: 150,
  doctorThresholds: { xminHorizonWarnMs: 400, skip: ["autovacuum-disabled" as const] },
};

function capture() {
  const lines: Array<{ level: string; message: string; fields: Record<string, unknown> | undefined }> = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields });
  };
  const logger = { info: at("info"), warn: at("warn"), error: at("error") };
  const about = (check: string, message: string) =>
    lines.filter((l) => l.message === message && l.fields?.check === check).length;
  return { logger, about };
}

async function gauge(component: string, check: string): Promise<number | undefined> {
  const all = await collect();
  const metric = all.scopeMetrics
    .flatMap((s) => s.metrics)
    .find((m) => m.descriptor.name === "prisma_outbox.doctor.warnings");
  const points = (metric?.dataPoints ?? []) as DataPoint<number>[];
  return points.find((p) => p.attributes.component === component && p.attributes.check === check)?.value;
}

async function holdSnapshot(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: "doctor watch holder" });
  c.on("error", () => {});
  await c.connect();
  held.push(c);
  await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
  await c.query("SELECT 1");
  return c;
}

type Watched = Relay | Inbox;
const doctorWarnings = async (w: Watched) => (await w.health()).warnings.filter((x) => x.startsWith("doctor "));

/** /readyz of the CLI's metrics server over `w.health()`: status and body. */
async function readyz(w: Watched): Promise<{ status: number; body: any }> {
  const server = await startMetricsServer({ port: 0, host: "127.0.0.1", health: () => w.health(), logger: quiet });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    return { status: res.status, body: await res.json() };
  } finally {
    await server.close();
  }
}

/** The scenario, the same for the relay and the inbox. */
async function showsOnceAndClears(w: Watched, component: string, about: (c: string, m: string) => number) {
  await until(async () => (await gauge(component, "xmin-horizon")) === 0, 10_000);
  expect(await doctorWarnings(w)).toEqual([]);
  const holder = await holdSnapshot();
  await until(async () => (await doctorWarnings(w)).length > 0, 10_000);
  const health = await w.health();
  expect(health.ok).toBe(true);
  expect(health.warnings.find((x) => x.startsWith("doctor "))).toMatch(
    /^doctor xmin-horizon \(warning\): the xmin horizon is held by session \d+ \(doctor watch holder, idle in transaction\)/,
  );
  expect(health.doctor?.findings.map((f) => f.check)).toEqual(["xmin-horizon"]);
  expect(await gauge(component, "xmin-horizon")).toBe(1);
  // /readyz stays 200 and carries the finding in its details.
  const ready = await readyz(w);
  expect(ready.status).toBe(200);
  expect(ready.body.doctor.findings[0]).toMatchObject({ check: "xmin-horizon", level: "warning" });
  expect(ready.body.warnings.some((x: string) => x.startsWith("doctor xmin-horizon"))).toBe(true);
  await sleep(1_000); // several more checks see it
  expect(about("xmin-horizon", "doctor: a check found a problem")).toBe(1);
  await holder.query("COMMIT");
  await until(async () => (await doctorWarnings(w)).length === 0, 10_000);
  expect(await gauge(component, "xmin-horizon")).toBe(0);
  await sleep(500);
  expect(about("xmin-horizon", "doctor: a check is fine again")).toBe(1);
  expect(about("xmin-horizon", "doctor: a check found a problem")).toBe(1);
}

describe("the doctor's periodic checks", () => {
  it("a relay: health warning, gauge and one log line while a snapshot is held; cleared after COMMIT", async () => {
    const { logger, about } = capture();
    const relay = relays.relay({ ...watch, logger });
    await relay.start();
    await showsOnceAndClears(relay, "relay", about);
  });

  it("an inbox: the same", async () => {
    const { logger, about } = capture();
    const { exchange, queue } = await broker.exchangeAndQueue("doctor");
    const box = broker.track(
      inbox({
        prisma,
        queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
        handlers: { h: { on: "x", handle: async () => {} } },
        ...watch,
        logger,
      }),
    );
    await box.start({ databaseUrl: url, amqpUrl, logger });
    await showsOnceAndClears(box, "inbox", about);
  });

  it("doctorIntervalMs: 0 runs no check", async () => {
    const relay = relays.relay({ doctorIntervalMs: 0, logger: false });
    await relay.start();
    expect((await relay.health()).doctor).toBeUndefined();
  });

  it("an inbox's start({ doctorIntervalMs }) replaces its definition's for that run (the CLI's --doctor-interval-ms)", async () => {
    const { exchange, queue } = await broker.exchangeAndQueue("doctor-override");
    const define = (doctorIntervalMs: number) =>
      broker.track(
        inbox({
          prisma,
          queue: { name: queue, bindings: [{ exchange, routingKey: "#" }] },
          handlers: { h: { on: "x", handle: async () => {} } },
          doctorIntervalMs,
          logger: quiet,
        }),
      );
    await expect(define(0).start({ databaseUrl: url, amqpUrl, doctorIntervalMs: -1 })).rejects.toThrow(
      OutboxConfigError,
    );
    const off = define(0);
    await off.start({ databaseUrl: url, amqpUrl, doctorIntervalMs: 60_000 });
    expect((await off.health()).doctor).toBeDefined();
    await off.stop();
    const on = define(60_000);
    await on.start({ databaseUrl: url, amqpUrl, doctorIntervalMs: 0 });
    expect((await on.health()).doctor).toBeUndefined();
  });
});

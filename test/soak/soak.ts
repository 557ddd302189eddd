// The soak run: hours of steady load with the reliability suite's faults in turn, and, from every worker, samples of
// what a leak would grow (memory after GC, handles, timers, sockets, connections, channels, listeners). Used by
// `npm run soak` (test/soak/main.ts, SOAK_MINUTES, default 60) and by its 3-minute version in the reliability suite
// (test/reliability/soak.test.ts); the verdict (bounds per figure) is test/soak/analysis.ts's.
//
// Who runs:
//   this process   the app: an outbox-extended Prisma client writing at a steady rate (declared Order events keyed by
//                  order, $enqueue keyed and unkeyed, some transactions rolled back on purpose, request-reply submits),
//                  and the fault schedule; and it samples pg_stat_activity per application_name
//   relay-1        the bundled worker CLI, never killed: its figures are held to the bounds
//   relay-2        the same, SIGKILLed and restarted by the schedule (its samples are plotted, not bounded)
//   inbox-1/-2     the bundled inbox CLI with test/soak/handlers.ts; inbox-1 long-lived, inbox-2 the one killed
// Every worker reaches RabbitMQ through two proxies of test/support/tcp-proxy.ts (one that cuts, one that throttles)
// and PostgreSQL directly (faults there are pg_terminate_backend). Each runs with test/soak/probe.ts preloaded, which
// sends its samples up the IPC channel.
//
// Faults, one every `faultEveryMs`, in this order, round and round: SIGKILL relay-2 (restarted), SIGKILL inbox-2
// (restarted), every worker's database connection terminated, the broker connection cut for 2 s, the broker link
// slowed to 4 KiB/s for 10 s, the relays' LISTEN sessions terminated.
//
// What is counted (the ledger): every message the app wrote carries a `tag`; the handlers write one Effect row per
// handling with that tag. Lost = a committed tag without an Effect; double = a tag with more than one; phantom = a
// rolled-back tag with one. Drained = outbox empty, no inbox row pending or dead, the queue empty, every request
// succeeded.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import pg from "pg";
import { outbox, requests } from "../../src/index.js";
import * as h from "../reliability/harness.js";
import * as ih from "../reliability/inbox-harness.js";
import { uniqueName } from "../support/consumer.js";
import { newPrismaClient } from "../support/prisma.js";
import { startTcpProxy, startThrottledProxy } from "../support/tcp-proxy.js";
import type { ProbeSample } from "./probe.js";

const PROBE = fileURLToPath(new URL("./probe.ts", import.meta.url));
const HANDLERS = "./test/soak/handlers.ts";

export type Slot = "relay-1" | "relay-2" | "inbox-1" | "inbox-2";
/** The slots never killed: their figures are held to the bounds. */
export const LONG_LIVED: readonly Slot[] = ["relay-1", "inbox-1"];

export interface SoakOptions {
  databaseUrl: string;
  amqpUrl: string;
  /** Length of the load (draining and the calm end come after). */
  minutes: number;
  /** How often each worker samples itself. @defaultValue 5_000 */
  sampleMs?: number;
  /** One fault every this many ms. @defaultValue 30_000 */
  faultEveryMs?: number;
  /** Write operations per second (each writes 1 to 2 messages; some roll back). @defaultValue 20 */
  opsPerSecond?: number;
  /** Progress lines (default: console.log). */
  log?: (line: string) => void;
}

export interface Sample extends ProbeSample {
  slot: Slot;
  /** Seconds since the run started. */
  t: number;
  /** How many times the slot's process was (re)started before this one (0: the first). */
  incarnation: number;
}

export interface DbSample {
  t: number;
  /** Open PostgreSQL sessions per application_name (the workers' and their handlers'). */
  sessions: Record<string, number>;
}

export interface FaultMark {
  /** Seconds since the run started: when the fault began (absent in runs saved before it was recorded). */
  from?: number;
  /** When its injection returned (a restart done, a cut link restored). */
  t: number;
  kind: FaultKind;
  note: string;
}

export type FaultKind = "kill-relay" | "kill-inbox" | "db-terminate" | "broker-cut" | "slow-link" | "listen-lost";
const FAULTS: readonly FaultKind[] = [
  "kill-relay",
  "kill-inbox",
  "db-terminate",
  "broker-cut",
  "slow-link",
  "listen-lost",
];

export interface Ledger {
  /** Tags committed (messages and requests). */
  committed: number;
  /** Tags written in transactions rolled back on purpose. */
  rolledBack: number;
  /** Requests submitted (included in committed). */
  requests: number;
  /** Writes that failed unexpectedly (their outcome is unknown: 0 or 1 effect accepted). */
  writeErrors: string[];
  lost: number;
  doubles: number;
  phantoms: number;
  /** Samples of the missing tags, for the report. */
  missing: string[];
  drained: { outbox: number; inboxPending: number; inboxDead: number; queue: number; requestsUnfinished: number };
  /** Worker exits after the final SIGTERM (expected 0 each). */
  exitCodes: Record<string, number | null>;
  /** Workers that exited without being told to (each restarted at once), with their last lines. */
  crashes: Array<{ slot: Slot; pid: number; t: number; exit: string; lastLines: string[] }>;
}

export interface SoakRun {
  minutes: number;
  sampleMs: number;
  /** Seconds: the end of the load, and of draining (the calm samples come after). */
  loadEndT: number;
  drainedT: number;
  endT: number;
  samples: Sample[];
  db: DbSample[];
  faults: FaultMark[];
  ledger: Ledger;
}

/** Application names of the workers' sessions (the app's own sessions have none). */
const WORKER_APPS_SQL = `application_name LIKE 'prisma-outbox%' OR application_name LIKE 'soak-handlers%'`;

export async function runSoak(options: SoakOptions): Promise<SoakRun> {
  const { databaseUrl, amqpUrl, minutes } = options;
  const sampleMs = options.sampleMs ?? 5_000;
  const faultEveryMs = options.faultEveryMs ?? 30_000;
  const opsPerSecond = options.opsPerSecond ?? 20;
  const log = options.log ?? ((line: string) => console.log(line));
  const started = Date.now();
  const now = () => (Date.now() - started) / 1000;

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 3 });
  pool.on("error", () => {});
  const exchange = uniqueName("soak.x");
  const queue = uniqueName("soak.q");
  const broker = new URL(amqpUrl);
  const throttle = await startThrottledProxy(
    { targetHost: broker.hostname, targetPort: Number(broker.port || 5672) },
    undefined,
  );
  const cutter = await startTcpProxy({
    targetHost: "127.0.0.1",
    targetPort: Number(new URL(throttle.url(amqpUrl)).port),
  });
  const workerAmqpUrl = cutter.url(amqpUrl);

  const samples: Sample[] = [];
  const db: DbSample[] = [];
  const faults: FaultMark[] = [];
  const procs = new Map<Slot, h.Proc>();
  const incarnations = new Map<Slot, number>();
  /** Processes the run itself stops (a SIGKILL of the schedule, the SIGTERM at the end): their exit is no crash. */
  const stopping = new Set<h.Proc>();
  const crashes: Ledger["crashes"] = [];
  let ending = false;
  const spawn = { execArgv: ["--expose-gc", "--import", PROBE] };
  const probeEnv = { SOAK_SAMPLE_MS: String(sampleMs) };

  const startSlot = async (slot: Slot): Promise<void> => {
    const incarnation = incarnations.get(slot) ?? 0;
    incarnations.set(slot, incarnation + 1);
    const name = `${slot}#${incarnation}`;
    const proc = slot.startsWith("relay")
      ? h.spawnWorker({
          databaseUrl,
          amqpUrl: workerAmqpUrl,
          name,
          spawn,
          // Publish timeouts short enough that the slow link's 10 s are felt (batches time out, the limit adapts).
          env: { ...probeEnv, OUTBOX_PUBLISH_TIMEOUT_MS: "3000", OUTBOX_SWEEP_MIN_AGE_MS: "2000" },
        })
      : ih.spawnInbox({
          databaseUrl,
          amqpUrl: workerAmqpUrl,
          queue,
          exchange,
          name,
          spawn,
          handlers: HANDLERS,
          env: { ...probeEnv, SOAK_APP_NAME: `soak-handlers ${slot}` },
        });
    proc.child.on("message", (message: { soak?: ProbeSample }) => {
      if (message?.soak) samples.push({ ...message.soak, slot, incarnation, t: (message.soak.at - started) / 1000 });
    });
    procs.set(slot, proc);
    void proc.exited.then(async (exit) => {
      if (stopping.has(proc)) return;
      crashes.push({
        slot,
        pid: proc.pid,
        t: now(),
        exit: String(exit.code ?? exit.signal),
        lastLines: proc.lines.slice(-30),
      });
      log(`soak: ${slot} pid ${proc.pid} exited by itself (${exit.code ?? exit.signal}); restarting it`);
      if (!ending) await startSlot(slot).catch((e: Error) => log(`soak: restart of ${slot} failed: ${e.message}`));
    });
    await proc.waitForLine(slot.startsWith("relay") ? /relay started/ : /inbox started/, 60_000);
  };

  // The inboxes first: they declare the exchange and the queue the relays publish to.
  await startSlot("inbox-1");
  await startSlot("inbox-2");
  await startSlot("relay-1");
  await startSlot("relay-2");
  log(`soak: workers started (${now().toFixed(0)} s); load for ${minutes} min, a fault every ${faultEveryMs / 1000} s`);

  const sampleDb = async () => {
    const { rows } = await pool.query<{ name: string; n: number }>(
      `SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND (${WORKER_APPS_SQL}) GROUP BY 1`,
    );
    db.push({ t: now(), sessions: Object.fromEntries(rows.map((r) => [r.name, r.n])) });
  };
  const dbTimer = setInterval(() => sampleDb().catch(() => {}), sampleMs);

  const app = startApp(databaseUrl, exchange, opsPerSecond);
  const loadEnds = started + minutes * 60_000;
  let k = 0;
  while (Date.now() + faultEveryMs <= loadEnds) {
    await h.sleep(faultEveryMs);
    const kind = FAULTS[k++ % FAULTS.length]!;
    const from = now();
    const note = await injectFault(kind, { procs, stopping, startSlot, pool, cutter, throttle });
    faults.push({ from, t: now(), kind, note });
    log(`soak: ${now().toFixed(0)} s fault ${kind}: ${note} (${app.ledger.committed.size} committed so far)`);
  }
  await h.sleep(Math.max(0, loadEnds - Date.now()));
  await app.stop();
  const loadEndT = now();
  log(`soak: load ended at ${loadEndT.toFixed(0)} s; draining`);

  const channelConnection = await amqp.connect(amqpUrl);
  const channel = await channelConnection.createChannel();
  const drained = await waitDrained(pool, channel, queue, app.ledger, 300_000);
  const drainedT = now();
  // The calm end: no load, no fault; the figures are read from these samples.
  await h.sleep(Math.max(4 * sampleMs, 15_000));
  clearInterval(dbTimer);
  await sampleDb();
  const endT = now();

  const ledger = await countLedger(pool, app.ledger, drained);
  ledger.crashes = crashes;
  ending = true;
  for (const proc of procs.values()) stopping.add(proc);
  for (const [slot, proc] of procs) {
    ledger.exitCodes[slot] = (await h.killProc(proc, "SIGTERM")).code;
  }
  await app.close();
  await channel.deleteQueue(queue).catch(() => {});
  await channel.deleteExchange(exchange).catch(() => {});
  await channelConnection.close().catch(() => {});
  await cutter.close();
  await throttle.close();
  await pool.end();
  return { minutes, sampleMs, loadEndT, drainedT, endT, samples, db, faults, ledger };
}

interface FaultContext {
  procs: Map<Slot, h.Proc>;
  stopping: Set<h.Proc>;
  startSlot(slot: Slot): Promise<void>;
  pool: pg.Pool;
  cutter: Awaited<ReturnType<typeof startTcpProxy>>;
  throttle: Awaited<ReturnType<typeof startThrottledProxy>>;
}

async function injectFault(kind: FaultKind, ctx: FaultContext): Promise<string> {
  const terminate = async (where: string) => {
    const r = await ctx.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND (${where})`,
    );
    return `${r.rowCount} sessions terminated`;
  };
  switch (kind) {
    case "kill-relay":
    case "kill-inbox": {
      const slot: Slot = kind === "kill-relay" ? "relay-2" : "inbox-2";
      const proc = ctx.procs.get(slot)!;
      ctx.stopping.add(proc);
      await h.killProc(proc, "SIGKILL");
      await ctx.startSlot(slot);
      return `${slot} pid ${proc.pid} SIGKILLed, restarted as pid ${ctx.procs.get(slot)!.pid}`;
    }
    case "db-terminate":
      return terminate(WORKER_APPS_SQL);
    case "listen-lost":
      return terminate(`application_name = 'prisma-outbox listener'`);
    case "broker-cut": {
      const before = ctx.cutter.connections;
      ctx.cutter.cut();
      await h.sleep(2_000);
      ctx.cutter.restore();
      return `${before} connections reset, refused for 2 s`;
    }
    case "slow-link":
      ctx.throttle.setRate(4 * 1024);
      await h.sleep(10_000);
      ctx.throttle.setRate(undefined);
      return "4 KiB/s for 10 s";
  }
}

// --- The app -------------------------------------------------------------------------------------------------------

interface AppLedger {
  committed: Set<string>;
  rolledBack: Set<string>;
  uncertain: Set<string>;
  requestIds: string[];
  writeErrors: string[];
}

class RolledBackOnPurpose extends Error {}

function startApp(databaseUrl: string, exchange: string, opsPerSecond: number) {
  const base = newPrismaClient(databaseUrl);
  let seq = 0;
  const tag = () => `t${++seq}`;
  const failFirst = () => Math.random() < 0.05;
  const prisma = base.$extends(
    outbox<typeof base>({
      exchange,
      queue: false,
      events: {
        Order: {
          create: (order) => ({
            routingKey: "soak.order",
            key: `order-${order.id % 8}`,
            payload: { tag: order.number, failFirst: order.amount % 20 === 0 },
          }),
        },
      },
    }),
  );
  const reqs = requests<typeof prisma>({ prisma, exchange });
  const ledger: AppLedger = {
    committed: new Set(),
    rolledBack: new Set(),
    uncertain: new Set(),
    requestIds: [],
    writeErrors: [],
  };
  const message = (routingKey: string, key?: string) => ({
    routingKey,
    ...(key ? { key } : {}),
    payload: { tag: tag(), failFirst: failFirst() },
  });

  const ops: Array<() => Promise<void>> = [
    async () => {
      const m = message("soak.plain");
      await track([m.payload.tag], () => prisma.$enqueue(m));
    },
    async () => {
      const key = `k${seq % 16}`;
      const ms = [message("soak.keyed", key), message("soak.keyed", key)];
      await track(
        ms.map((m) => m.payload.tag),
        () => prisma.$transaction(async (tx) => tx.$enqueue(ms)),
      );
    },
    async () => {
      const number = tag();
      await track([number], () => prisma.order.create({ data: { number, amount: Math.floor(Math.random() * 1000) } }));
    },
    async () => {
      // Rolled back on purpose, after both kinds of writes: none of it may ever be handled.
      const m = message("soak.plain");
      const number = tag();
      try {
        await prisma.$transaction(async (tx) => {
          await tx.$enqueue(m);
          await tx.order.create({ data: { number, amount: 1 } });
          throw new RolledBackOnPurpose();
        });
      } catch (error) {
        if (!(error instanceof RolledBackOnPurpose)) throw error;
        ledger.rolledBack.add(m.payload.tag).add(number);
      }
    },
    async () => {
      const t = tag();
      await track([t], async () => {
        const { id } = await reqs.submit("soak", { tag: t, failFirst: failFirst() });
        ledger.requestIds.push(id);
      });
    },
  ];
  const track = async (tags: string[], write: () => Promise<unknown>) => {
    try {
      await write();
      for (const t of tags) ledger.committed.add(t);
    } catch (error) {
      for (const t of tags) ledger.uncertain.add(t);
      if (ledger.writeErrors.length < 20) ledger.writeErrors.push((error as Error).message.slice(0, 300));
    }
  };

  let stopped = false;
  const loop = (async () => {
    const everyMs = 1000 / opsPerSecond;
    for (let n = 0; !stopped; n++) {
      const startedAt = Date.now();
      // Requests are one op in 10; the other four kinds share the rest.
      const op = n % 10 === 9 ? ops[4]! : ops[n % 4]!;
      await op().catch((error: Error) => {
        if (ledger.writeErrors.length < 20) ledger.writeErrors.push(error.message.slice(0, 300));
      });
      await h.sleep(Math.max(0, everyMs - (Date.now() - startedAt)));
    }
  })();
  return {
    ledger,
    async stop() {
      stopped = true;
      await loop;
    },
    async close() {
      await base.$disconnect();
    },
  };
}

// --- The end -------------------------------------------------------------------------------------------------------

async function effectTags(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ tag: string; n: number }>(
    'SELECT "messageId" AS tag, count(*)::int AS n FROM "Effect" GROUP BY 1',
  );
  return new Map(rows.map((r) => [r.tag, r.n]));
}

async function drainState(pool: pg.Pool, channel: amqp.Channel, queue: string) {
  const q = async (sql: string) => Number((await pool.query(sql)).rows[0].n);
  return {
    outbox: await q("SELECT count(*) AS n FROM outbox_message"),
    inboxPending: await q("SELECT count(*) AS n FROM inbox_message WHERE status = 'pending'"),
    inboxDead: await q("SELECT count(*) AS n FROM inbox_message WHERE status = 'dead'"),
    queue: (await channel.checkQueue(queue)).messageCount,
    requestsUnfinished: await q("SELECT count(*) AS n FROM outbox_request WHERE status <> 'succeeded'"),
  };
}

async function waitDrained(
  pool: pg.Pool,
  channel: amqp.Channel,
  queue: string,
  ledger: AppLedger,
  timeoutMs: number,
): Promise<Ledger["drained"]> {
  const deadline = Date.now() + timeoutMs;
  let state = await drainState(pool, channel, queue);
  while (Date.now() < deadline) {
    const effects = await effectTags(pool);
    const missing = [...ledger.committed].filter((t) => !effects.has(t)).length;
    state = await drainState(pool, channel, queue);
    if (missing === 0 && state.outbox === 0 && state.inboxPending === 0 && state.queue === 0) {
      if (state.requestsUnfinished === 0) return state;
    }
    await h.sleep(1_000);
  }
  return state;
}

async function countLedger(pool: pg.Pool, app: AppLedger, drained: Ledger["drained"]): Promise<Ledger> {
  const effects = await effectTags(pool);
  const missing = [...app.committed].filter((t) => !effects.has(t));
  let doubles = 0;
  for (const [t, n] of effects) if (n > 1 && (app.committed.has(t) || app.uncertain.has(t))) doubles += n - 1;
  const phantoms = [...app.rolledBack].filter((t) => effects.has(t)).length;
  return {
    committed: app.committed.size,
    rolledBack: app.rolledBack.size,
    requests: app.requestIds.length,
    writeErrors: app.writeErrors,
    lost: missing.length,
    doubles,
    phantoms,
    missing: missing.slice(0, 10),
    drained,
    exitCodes: {},
    crashes: [],
  };
}

/** The run's output folder: soak-output/<timestamp>/ under the repository (or `base`). */
export function outputDir(base = fileURLToPath(new URL("../../soak-output/", import.meta.url))): string {
  const dir = `${base}${new Date().toISOString().replace(/[:.]/g, "-")}`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

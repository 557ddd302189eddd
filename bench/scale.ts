// npm run bench:scale — the relay's drain rate when the table holds what is not due, and its memory on a backlog.
//   (a) drain DUE (200,000) due rows from a clean table
//   (b) the same with DEFERRED (1,000,000) rows not yet due (retries backing off: available_at in an hour), ahead of
//       the due rows in id order
//   (c) the same right after DEFERRED rows were deleted while another transaction held a snapshot open; the snapshot
//       stays open through the drain, so vacuum can remove none of them (a long transaction anywhere in the database)
//   (d) the relay process's peak RSS while draining backlogs of BACKLOG (1,000,000) and BACKLOG / 4 rows
// The relay is the bundled worker in a process of its own, with its defaults (batch 500, concurrency 2), publishing
// to an exchange bound to a queue that a consumer in this process drains. A drain is timed from the COMMIT that makes
// the due rows visible (followed by one NOTIFY) to the last message's arrival. Env: DUE, DEFERRED, BACKLOG, PAYLOAD.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import pg from "pg";
import { uniqueName } from "../test/support/consumer.js";
import { CpuTally, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { benchDatabase, printTable } from "./support.js";

const DUE = Number(process.env.DUE ?? 200_000);
const DEFERRED = Number(process.env.DEFERRED ?? 1_000_000);
const BACKLOG = Number(process.env.BACKLOG ?? 1_000_000);
const BODY = JSON.stringify({ order: 1, note: "x".repeat(Number(process.env.PAYLOAD ?? 256) - 24) });

const db = await benchDatabase();
const pool = new pg.Pool({ connectionString: db.url, max: 3 });
pool.on("error", () => {});
const exchange = uniqueName("bench.scale");
const log = (s: string) => process.stderr.write(`${s}\n`);
const root = fileURLToPath(new URL("../", import.meta.url));
/** CPU time per message of each drain (bench/cpu.ts): the worker, this process (the consumer), the servers. */
const cpuTally = new CpuTally();

// The consumer: counts arrivals.
const connection = await amqp.connect(db.amqpUrl);
const channel = await connection.createChannel();
await channel.assertExchange(exchange, "topic", { durable: true });
const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
await channel.bindQueue(queue, exchange, "#");
let arrived = 0;
let waiter: (() => void) | undefined;
await channel.consume(
  queue,
  () => {
    arrived++;
    waiter?.();
  },
  { noAck: true },
);
function arrivals(n: number, timeoutMs = 900_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`waited for ${n} messages, got ${arrived}`)), timeoutMs);
    waiter = () => {
      if (arrived < n) return;
      waiter = undefined;
      clearTimeout(timer);
      resolve(performance.now());
    };
    waiter();
  });
}

/** The worker process; resolves once it logged that it started. */
async function startWorker(): Promise<{
  child: ChildProcess;
  rss(): { now: number; peak: number };
  stop(): Promise<void>;
}> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "worker"], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, AMQP_URL: db.amqpUrl },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      output += d;
      if (output.includes("relay started")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`worker exited with ${code}: ${output}`)));
  });
  return {
    child,
    rss() {
      // VmHWM: the peak resident set size of the process so far; VmRSS: now.
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
      return { now: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
    },
    async stop() {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

async function reset(): Promise<void> {
  await pool.query("TRUNCATE outbox_message");
  await pool.query("VACUUM ANALYZE outbox_message");
  arrived = 0;
}

/** Inserts n rows in one statement; `availableAt` is SQL. */
async function insert(n: number, availableAt: string): Promise<void> {
  await pool.query(
    `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at)
     SELECT gen_random_uuid(), $1, 'bench', $2::json, ${availableAt} FROM generate_series(1, $3)`,
    [exchange, BODY, n],
  );
}

/** Makes DUE rows due at once (one COMMIT, one NOTIFY) with a worker running; resolves with the drain rate. */
async function drainDue(label: string): Promise<number> {
  const worker = await startWorker();
  try {
    await insert(DUE, "clock_timestamp()");
    const cpu = startCpu({ worker: worker.child.pid, "bench (consumer)": process.pid }, [databaseOf(db.url)]);
    const t0 = performance.now();
    await pool.query("SELECT pg_notify('prisma_outbox', '')");
    const t1 = await arrivals(DUE);
    cpuTally.add(label, cpu.stop(), DUE);
    return DUE / ((t1 - t0) / 1000);
  } finally {
    await worker.stop();
  }
}

async function cleanTable(): Promise<number> {
  await reset();
  return drainDue("(a) clean table");
}

async function deferredAhead(): Promise<number> {
  await reset();
  await insert(DEFERRED, "now() + interval '1 hour'");
  await pool.query("VACUUM ANALYZE outbox_message");
  return drainDue("(b) deferred rows ahead");
}

async function deletedUnderSnapshot(): Promise<number> {
  await reset();
  await insert(DEFERRED, "clock_timestamp() - interval '1 minute'");
  await pool.query("VACUUM ANALYZE outbox_message");
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  try {
    await holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    await holder.query("SELECT count(*) FROM outbox_message WHERE id = 1");
    await pool.query("DELETE FROM outbox_message");
    return await drainDue("(c) deleted rows, snapshot open");
  } finally {
    await holder.query("ROLLBACK");
    await holder.end();
  }
}

async function backlogRss(n: number): Promise<{ idle: number; peak: number; rate: number }> {
  await reset();
  const worker = await startWorker();
  const idle = worker.rss().now;
  await worker.stop();
  await insert(n, "clock_timestamp()");
  await pool.query("VACUUM ANALYZE outbox_message");
  const t0 = performance.now();
  const draining = await startWorker();
  // From the worker's start: its startup is part of this drain.
  const cpu = startCpu({ worker: draining.child.pid, "bench (consumer)": process.pid }, [databaseOf(db.url)]);
  try {
    const t1 = await arrivals(n);
    cpuTally.add(`(d) backlog of ${n}`, cpu.stop(), n);
    return { idle, peak: draining.rss().peak, rate: n / ((t1 - t0) / 1000) };
  } finally {
    await draining.stop();
  }
}

log(`bench:scale: ${DUE} due rows; ${DEFERRED} deferred / deleted rows; backlog ${BACKLOG}; ${BODY.length}-byte JSON`);
log("(a) clean table ...");
const a1 = await cleanTable();
log("(b) deferred rows ahead ...");
const b = await deferredAhead();
log("(c) deleted rows under an open snapshot ...");
const c = await deletedUnderSnapshot();
log("(a) clean table, again ...");
const a2 = await cleanTable();
// (a) runs first and last, and the baseline is their mean: the machine's drift hits both sides alike.
const a = (a1 + a2) / 2;
log(`(d) backlog of ${BACKLOG / 4} ...`);
const small = await backlogRss(BACKLOG / 4);
log(`(d) backlog of ${BACKLOG} ...`);
const large = await backlogRss(BACKLOG);

console.log(`\nDrain of ${DUE} due rows by the worker (defaults), msg/s`);
printTable([
  { case: "(a) clean table (mean of a first and a last run)", "msg/s": Math.round(a), "ratio to (a)": 1 },
  { case: `(b) ${DEFERRED} deferred rows ahead`, "msg/s": Math.round(b), "ratio to (a)": b / a },
  { case: `(c) ${DEFERRED} deleted rows, snapshot held open`, "msg/s": Math.round(c), "ratio to (a)": c / a },
]);
console.log(`ratio (b)/(a) = ${(b / a).toFixed(3)}`);
console.log(`ratio (c)/(a) = ${(c / a).toFixed(3)}`);
console.log("\nWorker process memory (MiB)");
printTable(
  [
    [BACKLOG / 4, small],
    [BACKLOG, large],
  ].map(([n, x]) => {
    const r = x as { idle: number; peak: number; rate: number };
    return { backlog: n as number, "RSS idle": r.idle, "peak RSS draining": r.peak, "msg/s": Math.round(r.rate) };
  }),
);
console.log(`ratio peak RSS ${BACKLOG} / ${BACKLOG / 4} backlog = ${(large.peak / small.peak).toFixed(3)}`);
printCpuTable("bench:scale", cpuTally.rows);
await connection.close();
await pool.end();
await db.cleanup();

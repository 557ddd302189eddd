// npm run bench:request-reply: the request-reply example's web server (examples/request-reply/server.ts, a relay in
// its process) under load, against the real PostgreSQL and RabbitMQ.
//   (a) 202 latency of POST /reports (a no-op report: steps 0) at a steady RATE/s, open loop, against (b) a baseline
//       endpoint of the same server, POST /baseline (one row inserted in a Prisma transaction, 201), at the same rate
//       in the same run: two rounds each, interleaved (b a b a). Client-side times, keep-alive connections.
//   (c) submit-to-succeeded latency of a no-op job at LATENCY_RATE/s: the request row's completed_at - created_at
//       (the database's clock: from the submit transaction's start to the result's write in the handler's
//       transaction), with the worker in its own process (examples/request-reply/worker.ts), then in the web process
//       (WORKER_IN_PROCESS=1). Also reported for the requests of (a), which a worker handles at whatever pace it can.
//       Unless LATENCY_RATE is set, each setup first measures the rate it sustains (CAPACITY no-op requests sent at
//       CAPACITY_RATE/s, from the first submit to the last success) and runs its latency case at half of it: at the
//       full rate the latency measured is a growing backlog, not the path.
// Every case also prints each process's CPU time per request (bench/cpu.ts).
// Env: RATE (500), SECONDS (5 per round), LATENCY_RATE (half the sustained rate), LATENCY_SECONDS (6), CAPACITY
// (3000), CAPACITY_RATE (2000).
import { type ChildProcess, spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import pg from "pg";
import { uniqueName } from "../test/support/consumer.js";
import { createTestDatabase, dropDatabase } from "../test/support/database.js";
import { openSchemaEngine } from "../test/support/schema-engine.js";
import { resolveServers, withDatabase } from "../test/support/servers.js";
import { type CpuRow, databaseOf, printCpuTable, startCpu } from "./cpu.js";
import { printTable, summarize } from "./support.js";

const RATE = Number(process.env.RATE ?? 500);
const SECONDS = Number(process.env.SECONDS ?? 5);
const LATENCY_RATE = process.env.LATENCY_RATE === undefined ? undefined : Number(process.env.LATENCY_RATE);
const CAPACITY = Number(process.env.CAPACITY ?? 3_000);
const CAPACITY_RATE = Number(process.env.CAPACITY_RATE ?? 2_000);
const LATENCY_SECONDS = Number(process.env.LATENCY_SECONDS ?? 6);
const root = fileURLToPath(new URL("../", import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);

// --- Database: the example's migrations (its Order table is the baseline's) -----------------------------------------
const servers = await resolveServers();
const template = `prisma_outbox_rr_bench_tpl_${process.pid}`;
{
  const admin = new pg.Client({ connectionString: servers.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${template}`);
  await admin.end();
  const engine = await openSchemaEngine(withDatabase(servers.databaseUrl, template));
  await engine.applyMigrations(`${root}examples/prisma/migrations`);
  await engine.close();
}
const db = await createTestDatabase(servers.databaseUrl, template);
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
pool.on("error", () => {});
const exchange = uniqueName("bench.rr.x");
const queue = uniqueName("bench.rr.q");
const env = {
  DATABASE_URL: db.url,
  AMQP_URL: servers.amqpUrl,
  REPORTS_EXCHANGE: exchange,
  REPORTS_QUEUE: queue,
  BENCH_BASELINE: "1",
  PORT: "0",
};

// --- Processes ------------------------------------------------------------------------------------------------------
const children: ChildProcess[] = [];
function start(
  script: string,
  extra: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env: { ...process.env, ...env, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        if (ready.test(line)) resolve({ child, line });
        else if (/warn|error/i.test(line)) log(`[${script.split("/").pop()}] ${line}`);
      });
    }
    child.once("exit", (code) => reject(new Error(`${script} exited (${code})`)));
  });
}
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

// --- Load -----------------------------------------------------------------------------------------------------------
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
type Reply = { status: number; ms: number; location: string | undefined };
function post(port: number, path: string, body: string): Promise<Reply> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "POST", agent, headers: { "content-type": "application/json" } },
      (res) => {
        res.resume();
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            location: res.headers.location as string | undefined,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Sends `rate` requests a second for `seconds`, on schedule whatever the responses do (open loop). */
async function steady(port: number, path: string, rate: number, seconds: number) {
  const total = Math.round(rate * seconds);
  const results: Array<Promise<Reply>> = [];
  const t0 = performance.now();
  while (results.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    while (results.length < due) results.push(post(port, path, JSON.stringify({ title: "bench", steps: 0 })));
    await new Promise((r) => setTimeout(r, 1));
  }
  const done = await Promise.all(results);
  const bad = done.filter((r) => r.status !== (path === "/baseline" ? 201 : 202));
  if (bad.length > 0) throw new Error(`${bad.length} of ${done.length} ${path} answered ${bad[0]!.status}`);
  return done;
}

const idsOf = (rs: Reply[]) => rs.map((r) => r.location!.split("/")[2]!);

/** completed_at - created_at of these requests, once all succeeded (ms, the database's clock). */
async function succeededLatency(ids: string[], timeoutMs = 300_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ ms: number; status: string }>(
      `SELECT status, extract(epoch FROM completed_at - created_at) * 1000 AS ms FROM outbox_request WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    const done = rows.filter((r) => r.status === "succeeded");
    if (done.length === ids.length) return done.map((r) => Number(r.ms));
    if (rows.some((r) => r.status === "failed")) throw new Error("a no-op request failed");
    if (Date.now() > deadline) throw new Error(`only ${done.length} of ${ids.length} succeeded in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The rate submit->succeeded a setup sustains (see the top), and the rate its latency case runs at. */
async function sustainedRate(port: number): Promise<{ sustained: number | undefined; rate: number }> {
  if (LATENCY_RATE !== undefined) return { sustained: undefined, rate: LATENCY_RATE };
  const ids = idsOf(await steady(port, "/reports", CAPACITY_RATE, CAPACITY / CAPACITY_RATE));
  await succeededLatency(ids);
  const { rows } = await pool.query<{ ms: number }>(
    "SELECT extract(epoch FROM max(completed_at) - min(created_at)) * 1000 AS ms FROM outbox_request WHERE id = ANY($1::uuid[])",
    [ids],
  );
  const sustained = ids.length / (Number(rows[0]!.ms) / 1000);
  const rate = Math.max(1, Math.floor(sustained / 2));
  log(`  sustained ${Math.round(sustained)} requests/s submit to succeeded; latency at half: ${rate}/s`);
  return { sustained, rate };
}

/** CPU time per request of every case (bench/cpu.ts). */
const cpuRows: CpuRow[] = [];
const databases = [databaseOf(db.url)];
async function measured<T>(
  label: string,
  messages: number,
  processes: Record<string, number | undefined>,
  work: () => Promise<T>,
): Promise<T> {
  const cpu = startCpu({ "bench (client)": process.pid, ...processes }, databases);
  const result = await work();
  cpuRows.push({ case: label, cpu: cpu.stop(), messages });
  return result;
}

const fmt = (s: ReturnType<typeof summarize>) => `${s.p50.toFixed(2)} / ${s.p99.toFixed(2)} / ${s.max.toFixed(1)}`;

try {
  // Worker in its own process.
  const worker = await start("examples/request-reply/worker.ts", {}, /^worker ready/);
  const server = await start("examples/request-reply/server.ts", {}, /^listening on/);
  const port = Number(/:(\d+)/.exec(server.line.replace("http://", ""))![1]);
  log(`web server on port ${port}; warming up`);
  await steady(port, "/baseline", 100, 1);
  await succeededLatency(idsOf(await steady(port, "/reports", 100, 1)));

  const baseline: number[] = [];
  const submits: number[] = [];
  const submitsAlone: number[] = [];
  const loadIds: string[] = [];
  for (let round = 1; round <= 2; round++) {
    const n = Math.round(RATE * SECONDS);
    const procs = { web: server.child.pid, worker: worker.child.pid };
    log(`round ${round}: baseline at ${RATE}/s`);
    const b = await measured(`(b) /baseline, round ${round}`, n, procs, () => steady(port, "/baseline", RATE, SECONDS));
    baseline.push(...b.map((r) => r.ms));
    log(`round ${round}: POST /reports at ${RATE}/s, the worker running`);
    const rs = await measured(`(a) /reports to succeeded, round ${round}`, n, procs, async () => {
      const replies = await steady(port, "/reports", RATE, SECONDS);
      log("waiting for the worker to finish them");
      await succeededLatency(idsOf(replies));
      return replies;
    });
    submits.push(...rs.map((r) => r.ms));
    loadIds.push(...idsOf(rs));
    // The same with the worker paused (SIGSTOP): what the web process alone costs, without the worker's CPU beside it
    // on the machine's two cores. The messages wait in RabbitMQ meanwhile.
    log(`round ${round}: POST /reports at ${RATE}/s, the worker paused`);
    worker.child.kill("SIGSTOP");
    const alone = await steady(port, "/reports", RATE, SECONDS);
    worker.child.kill("SIGCONT");
    submitsAlone.push(...alone.map((r) => r.ms));
    await succeededLatency(idsOf(alone));
  }
  const underLoad = summarize(await succeededLatency(loadIds));
  const ownProcs = { web: server.child.pid, worker: worker.child.pid };
  const ownRate = await measured("(c) capacity, worker own process", CAPACITY, ownProcs, () => sustainedRate(port));
  log(`latency at ${ownRate.rate}/s, worker in its own process`);
  const own = summarize(
    await measured(
      `(c) at ${ownRate.rate}/s, worker own process`,
      Math.round(ownRate.rate * LATENCY_SECONDS),
      ownProcs,
      async () => succeededLatency(idsOf(await steady(port, "/reports", ownRate.rate, LATENCY_SECONDS))),
    ),
  );
  await stop(server.child);
  await stop(worker.child);

  // Worker in the web process.
  const inProcess = await start("examples/request-reply/server.ts", { WORKER_IN_PROCESS: "1" }, /^listening on/);
  const port2 = Number(/:(\d+)/.exec(inProcess.line.replace("http://", ""))![1]);
  await succeededLatency(idsOf(await steady(port2, "/reports", 100, 1)));
  const webProcs = { "web + worker": inProcess.child.pid };
  const webRate = await measured("(c) capacity, worker in web process", CAPACITY, webProcs, () => sustainedRate(port2));
  log(`latency at ${webRate.rate}/s, worker in the web process`);
  const inWeb = summarize(
    await measured(
      `(c) at ${webRate.rate}/s, worker in web process`,
      Math.round(webRate.rate * LATENCY_SECONDS),
      webProcs,
      async () => succeededLatency(idsOf(await steady(port2, "/reports", webRate.rate, LATENCY_SECONDS))),
    ),
  );
  await stop(inProcess.child);

  const b = summarize(baseline);
  const a = summarize(submits);
  const a2 = summarize(submitsAlone);
  console.log(
    `\nrequest-reply bench: ${RATE}/s for 2 x ${SECONDS} s per endpoint; latency runs for ${LATENCY_SECONDS} s at ` +
      (ownRate.sustained === undefined
        ? `${LATENCY_RATE}/s`
        : `half the sustained rate: worker in its own process ${Math.round(ownRate.sustained)}/s -> ${ownRate.rate}/s, ` +
          `in the web process ${Math.round(webRate.sustained!)}/s -> ${webRate.rate}/s`),
  );
  printTable([
    { case: `(b) POST /baseline 201 at ${RATE}/s (ms)`, "p50 / p99 / max": fmt(b), n: b.n },
    { case: `(a) POST /reports 202 at ${RATE}/s, worker running (ms)`, "p50 / p99 / max": fmt(a), n: a.n },
    { case: `(a') POST /reports 202 at ${RATE}/s, worker paused (ms)`, "p50 / p99 / max": fmt(a2), n: a2.n },
    { case: `(c) submit->succeeded, worker own process, ${ownRate.rate}/s`, "p50 / p99 / max": fmt(own), n: own.n },
    {
      case: `(c) submit->succeeded, worker in web process, ${webRate.rate}/s`,
      "p50 / p99 / max": fmt(inWeb),
      n: inWeb.n,
    },
    { case: `(c) submit->succeeded of (a)'s requests (${RATE}/s)`, "p50 / p99 / max": fmt(underLoad), n: underLoad.n },
  ]);
  console.log(
    `202 vs 201 baseline: p50 ratio ${(a.p50 / b.p50).toFixed(2)}, p99 ratio ${(a.p99 / b.p99).toFixed(2)}; ` +
      `worker paused: p50 ratio ${(a2.p50 / b.p50).toFixed(2)}, p99 ratio ${(a2.p99 / b.p99).toFixed(2)}` +
      ` (goals for (c) p50: < 10 ms in the web process, < 20 ms in its own)`,
  );
  const met = (s: ReturnType<typeof summarize>) =>
    `p50 ${s.p50.toFixed(2)} ms (< 5: ${s.p50 < 5 ? "met" : "MISSED"}), p99 ${s.p99.toFixed(2)} ms (< 20: ${s.p99 < 20 ? "met" : "MISSED"}), max ${s.max.toFixed(1)} ms`;
  console.log(`(c) at half the sustained rate, worker in its own process: ${met(own)}`);
  console.log(`(c) at half the sustained rate, worker in the web process: ${met(inWeb)}`);
  printCpuTable("bench:request-reply (per request)", cpuRows);
} finally {
  for (const c of children) await stop(c).catch(() => {});
  agent.destroy();
  await pool.end();
  const connection = await amqp.connect(servers.amqpUrl);
  const channel = await connection.createChannel();
  await channel.deleteQueue(queue).catch(() => {});
  await channel.deleteExchange(exchange).catch(() => {});
  await connection.close().catch(() => {});
  await db.drop();
  await dropDatabase(servers.databaseUrl, template);
  await servers.stop();
}

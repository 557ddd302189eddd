// What the web server and the worker share: the Prisma client (extended with outbox()), the requests() definition
// and the report job. Settings come from the environment:
//   DATABASE_URL, AMQP_URL      required
//   REPORTS_EXCHANGE            the exchange of the messages that start the jobs (default "reports")
//   REPORTS_QUEUE               the workers' inbox queue (default "reports.work")
//   REPORT_STEP_MS              how long each of the job's 10 steps takes (default 300: a 3 s report)
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { inbox, type OutboxQueue, outbox, type RequestContext, requests } from "../../src/index.ts"; // your app: "prisma-outbox"
import { PrismaClient } from "../generated/prisma/client.ts";

export const settings = {
  databaseUrl: required("DATABASE_URL"),
  amqpUrl: required("AMQP_URL"),
  exchange: process.env.REPORTS_EXCHANGE ?? "reports",
  queue: process.env.REPORTS_QUEUE ?? "reports.work",
  stepMs: Number(process.env.REPORT_STEP_MS ?? 300),
};

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`Set ${name} (see examples/request-reply/README.md)`);
    process.exit(2);
  }
  return value;
}

function listeningPool(connectionString: string): pg.Pool {
  const pool = new pg.Pool({ connectionString });
  pool.on("error", (error) => console.warn("database connection lost:", error.message));
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** The client of a process; `queue` is the in-process hand-off to a relay in the same process (the web server's). */
export function createPrisma(queue: OutboxQueue | false) {
  const base = new PrismaClient({
    // A pool whose connections listen for their errors (docs/operating.md, "A lost database connection").
    adapter: new PrismaPg(listeningPool(settings.databaseUrl), { disposeExternalPool: true }),
    // A burst of submits (100 at once in test/request-reply/http.test.ts) queues for the pool's 10 connections: on a
    // loaded machine Prisma's default 2 s wait for one ran out and a submit answered 500 ("Unable to start a
    // transaction in the given time"). A request may wait longer for a connection than that.
    transactionOptions: { maxWait: 10_000 },
  });
  return base.$extends(outbox<typeof base>({ exchange: settings.exchange, queue }));
}
export type Prisma = ReturnType<typeof createPrisma>;

export function createRequests(prisma: Prisma) {
  return requests<Prisma>({ prisma, exchange: settings.exchange });
}

/** What POST /reports takes. */
export interface ReportInput {
  /** A label for the report (shown on the page). */
  title: string;
  /** Steps of work (default 10); each takes REPORT_STEP_MS. 0 makes a report at once (the benchmark's no-op job). */
  steps?: number;
  /** Fail at this step, every attempt: shows a failed request. */
  failAt?: number;
}

export interface ReportResult {
  title: string;
  lines: Array<{ step: number; value: number }>;
  total: number;
  attempt: number;
  generatedAt: string;
}

/**
 * The job: a few seconds of "work" in steps, reporting progress after each (committed at once, so the page sees it),
 * stopping as soon as its signal aborts (a cancel, or the worker stopping).
 */
export async function makeReport(
  input: ReportInput,
  { progress, signal, attempt }: RequestContext<unknown>,
): Promise<ReportResult> {
  const steps = input.steps ?? 10;
  const lines: ReportResult["lines"] = [];
  for (let step = 1; step <= steps; step++) {
    await pause(settings.stepMs, signal);
    if (input.failAt === step) throw new Error(`the data source failed at step ${step} of ${steps}`);
    lines.push({ step, value: (step * 37) % 11 });
    await progress(Math.floor((step / steps) * 100), `step ${step} of ${steps}`);
  }
  return {
    title: input.title,
    lines,
    total: lines.reduce((sum, l) => sum + l.value, 0),
    attempt,
    generatedAt: new Date().toISOString(),
  };
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The inbox that runs the report jobs: in the worker process (worker.ts), or in the web server's (WORKER_IN_PROCESS=1). */
export function createWorker(prisma: Prisma, reports: ReturnType<typeof createRequests>) {
  return inbox<Record<string, unknown>, Prisma>({
    prisma,
    queue: {
      name: settings.queue,
      bindings: [{ exchange: settings.exchange, routingKey: reports.routingKey("report") }],
    },
    exchanges: [{ name: settings.exchange, type: "topic" }],
    handlers: { report: reports.handler("report", makeReport) },
    maxAttempts: Number(process.env.INBOX_MAX_ATTEMPTS ?? 3),
    handlerTimeoutMs: Number(process.env.INBOX_HANDLER_TIMEOUT_MS ?? 30_000),
    retryBaseDelayMs: 200,
    retryMaxDelayMs: 2_000,
    logger: {
      info: (m) => console.log(m),
      warn: (m) => console.warn(`warn: ${m}`),
      error: (m) => console.error(`error: ${m}`),
    },
  });
}

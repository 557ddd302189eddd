// The web server (Node's http, no framework): the Asynchronous Request-Reply contract over requests().
//   POST   /reports              -> 202 Accepted, Location: /reports/{id}/status, Retry-After (Idempotency-Key honoured)
//   GET    /reports/{id}/status  -> 200 { status, progress } (Retry-After while pending or running), or
//                                   303 See Other to /reports/{id} once succeeded
//   GET    /reports/{id}         -> 200 the result; 404 while not done; a failed one's problem details
//   DELETE /reports/{id}         -> cancels: 200 with the status; 409 when already finished
//   GET    /                     -> the page (index.html)
// Errors are application/problem+json (RFC 9457). POST bodies must be application/json (415 otherwise): a cross-site
// HTML form can only send form or text types, so it cannot create jobs. A failed job's error text (it may name hosts,
// paths, data) goes to this server's log only; clients get a fixed message. A key reused with another body gets a 422
// that does not name the request holding the key: its id is enough to read or cancel it.
// Not done here, as a real app must: authentication (see README.md), and idempotency keys scoped per caller (here all
// callers share one key space; a real app passes e.g. `${userId}:${key}`).
// A relay runs in this process, so a submitted request's message is published at once (in-process hand-off after
// COMMIT); the jobs run in the worker process (worker.ts), or here with WORKER_IN_PROCESS=1.
//   DATABASE_URL=... AMQP_URL=... PORT=3000 node --import tsx examples/request-reply/server.ts
// BENCH_BASELINE=1 adds POST /baseline: one row inserted in a transaction, 201 (bench/request-reply.ts compares).
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type Inbox, OutboxQueue, RequestIdempotencyError, type RequestStatus, startRelay } from "../../src/index.ts"; // your app: "prisma-outbox"
import { createPrisma, createRequests, createWorker, type ReportInput, settings } from "./app.ts";

const RETRY_AFTER_SECONDS = "1";
const MAX_BODY_BYTES = 64 * 1024;
const page = readFileSync(new URL("./index.html", import.meta.url));

const handoff = new OutboxQueue();
const prisma = createPrisma(handoff);
const reports = createRequests(prisma);
const relay = await startRelay({
  databaseUrl: settings.databaseUrl,
  amqpUrl: settings.amqpUrl,
  queue: handoff,
  exchanges: [{ name: settings.exchange, type: "topic" }],
});
let worker: Inbox | undefined;
if (process.env.WORKER_IN_PROCESS === "1") {
  worker = createWorker(prisma, reports);
  await worker.start({ databaseUrl: settings.databaseUrl, amqpUrl: settings.amqpUrl });
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(title);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendProblem(res: ServerResponse, problem: { status: number; title: string; [k: string]: unknown }) {
  const text = JSON.stringify({ type: "about:blank", ...problem });
  res.writeHead(problem.status, {
    "content-type": "application/problem+json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpProblem(
      415,
      "Unsupported Media Type",
      "The body must be JSON, sent as Content-Type: application/json.",
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, "Request body too large", `At most ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpProblem(400, "Invalid JSON", 'The body must be a JSON object such as {"title":"November"}.');
  }
}

function reportInput(body: unknown): ReportInput {
  const b = body as Partial<ReportInput> | null;
  const int = (v: unknown, min: number, max: number) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
  if (typeof b !== "object" || b === null || Array.isArray(b)) throw new HttpProblem(400, "Expected a JSON object");
  const title = b.title ?? "Report";
  if (typeof title !== "string" || title.length === 0 || title.length > 100) {
    throw new HttpProblem(400, "Invalid title", "`title` must be a string of 1 to 100 characters.");
  }
  if (b.steps !== undefined && !int(b.steps, 0, 100)) {
    throw new HttpProblem(400, "Invalid steps", "`steps` must be an integer from 0 to 100.");
  }
  if (b.failAt !== undefined && !int(b.failAt, 1, 100)) {
    throw new HttpProblem(400, "Invalid failAt", "`failAt` must be an integer from 1 to 100.");
  }
  const input: ReportInput = { title };
  if (b.steps !== undefined) input.steps = b.steps;
  if (b.failAt !== undefined) input.failAt = b.failAt;
  return input;
}

/** What clients see of a failed report: never the job's error text. */
const REPORT_FAILED =
  "The report could not be made. Try again; if it keeps failing, contact support with the report id.";
/** Reports whose failure this process has logged, so that each poll does not log it again. */
const failureLogged = new Set<string>();

/** A failed report's problem details, safe for any client; the job's own error goes to this server's log once. */
function failure(s: RequestStatus) {
  if (!failureLogged.has(s.id)) {
    if (failureLogged.size >= 10_000) failureLogged.clear();
    failureLogged.add(s.id);
    console.error(`error: report ${s.id} failed after ${s.attempts} attempt(s): ${JSON.stringify(s.error ?? null)}`);
  }
  return { type: "about:blank", title: "The request failed", status: 500, detail: REPORT_FAILED, attempts: s.attempts };
}

/** The status resource's body. */
function statusBody(s: RequestStatus) {
  return {
    id: s.id,
    status: s.status,
    progress: s.progress,
    attempts: s.attempts,
    createdAt: s.createdAt,
    startedAt: s.startedAt,
    updatedAt: s.updatedAt,
    completedAt: s.completedAt,
    ...(s.status === "failed" ? { error: failure(s) } : {}),
    links: { self: `/reports/${s.id}/status`, result: `/reports/${s.id}` },
  };
}

async function found(id: string): Promise<RequestStatus> {
  const s = await reports.status(id);
  if (s?.type !== "report") throw new HttpProblem(404, "No such report", `There is no report ${id} (or it expired).`);
  return s;
}

async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const parts = url.pathname.split("/").filter(Boolean);
  if (req.method === "GET" && url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length });
    res.end(page);
    return;
  }
  if (req.method === "POST" && url.pathname === "/baseline" && process.env.BENCH_BASELINE === "1") {
    const number = `B-${process.hrtime.bigint()}-${Math.random()}`;
    const order = await prisma.$transaction((tx) => tx.order.create({ data: { number, amount: 1 } }));
    send(res, 201, { id: order.id }, { location: `/baseline/${order.id}` });
    return;
  }
  if (parts[0] !== "reports") throw new HttpProblem(404, "Not found", `${req.method} ${url.pathname} is not a route.`);

  if (parts.length === 1 && req.method === "POST") {
    const input = reportInput(await readJson(req));
    const key = req.headers["idempotency-key"];
    if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > 255)) {
      throw new HttpProblem(400, "Invalid Idempotency-Key", "The Idempotency-Key header must be 1 to 255 characters.");
    }
    try {
      const { id, created } = await reports.submit("report", input, key ? { idempotencyKey: key } : {});
      const location = `/reports/${id}/status`;
      send(
        res,
        202,
        { id, status: "pending", created, links: { status: location } },
        {
          location,
          "retry-after": RETRY_AFTER_SECONDS,
        },
      );
    } catch (error) {
      // Neither the holder's id nor the library's message (which names it): the key may be another caller's.
      if (error instanceof RequestIdempotencyError) {
        console.warn(`warn: Idempotency-Key reused with another body; report ${error.requestId} holds it`);
        throw new HttpProblem(
          422,
          "Idempotency-Key reused",
          "This Idempotency-Key was used for a request with a different body: use a new key for a new request.",
        );
      }
      throw error;
    }
    return;
  }
  const id = parts[1] ?? "";
  if (parts.length === 3 && parts[2] === "status" && req.method === "GET") {
    const s = await found(id);
    if (s.status === "succeeded") {
      res.writeHead(303, { location: `/reports/${id}`, "cache-control": "no-store", "content-length": 0 });
      res.end();
      return;
    }
    const waiting = s.status === "pending" || s.status === "running";
    send(res, 200, statusBody(s), waiting ? { "retry-after": RETRY_AFTER_SECONDS } : {});
    return;
  }
  if (parts.length === 2 && req.method === "GET") {
    const s = await found(id);
    if (s.status === "succeeded") return send(res, 200, s.result);
    if (s.status === "failed") return sendProblem(res, { ...failure(s), instance: `/reports/${id}` });
    if (s.status === "cancelled") throw new HttpProblem(410, "The report was cancelled", `Report ${id} has no result.`);
    throw new HttpProblem(404, "The report is not ready", `Report ${id} is ${s.status}: poll its status.`, {
      status_url: `/reports/${id}/status`,
    });
  }
  if (parts.length === 2 && req.method === "DELETE") {
    await found(id);
    const s = (await reports.cancel(id))!;
    if (s.status !== "cancelled") {
      throw new HttpProblem(409, "The report is already finished", `Report ${id} is ${s.status}.`);
    }
    return send(res, 200, statusBody(s));
  }
  throw new HttpProblem(405, "Method not allowed", `${req.method} ${url.pathname} is not supported.`);
}

const server = createServer((req, res) => {
  route(req, res).catch((error: unknown) => {
    if (error instanceof HttpProblem) {
      return sendProblem(res, { status: error.status, title: error.title, detail: error.detail, ...error.extra });
    }
    console.error(`error: ${req.method} ${req.url}: ${(error as Error).stack ?? error}`);
    if (!res.headersSent) sendProblem(res, { status: 500, title: "Internal Server Error" });
    else res.destroy();
  });
});
server.keepAliveTimeout = 5_000;
server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : process.env.PORT;
  console.log(`listening on http://127.0.0.1:${port}${worker ? " (worker in process)" : ""}`);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    server.close();
    server.closeAllConnections();
    await worker?.stop();
    await relay.stop();
    await prisma.$disconnect();
    console.log(`server stopped (${signal})`);
    process.exit(0);
  });
}

// The dashboard: one page and its JSON API under /ui, as a request handler that the worker's and the inbox's
// metrics port (metrics-server.ts) and `prisma-outbox dashboard` (dashboard-command.ts) both mount. Every request
// passes the guard (guard.ts) first; every action, done or refused, is logged with who asked and how many rows it
// changed, never with the token.
//
// States: created -> start() (the sampler runs) -> close() (the sampler stops; the pool stays the caller's).
import type { IncomingMessage, ServerResponse } from "node:http";
import { OutboxConfigError } from "../../errors.js";
import { type ApiAnswer, actionRequest, deadLetters, doctorReport, overview, readJson, runAction } from "./api.js";
import { admit, crossSiteRefusal, type Refusal, requester } from "./guard.js";
import { type DashboardOptions, type ResolvedDashboardOptions, resolveDashboardOptions } from "./options.js";
import { PAGE_CSP, PAGE_HTML } from "./page.js";
import { Sampler } from "./sampler.js";

export interface Dashboard {
  readonly options: Readonly<Omit<ResolvedDashboardOptions, "token" | "pool">>;
  /** Answers the request when its path is /ui or under it; false (nothing written) otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  start(): void;
  close(): void;
}

const COMMON_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

function sendJson(res: ServerResponse, { status, body }: ApiAnswer): void {
  res.writeHead(status, { ...COMMON_HEADERS, "content-type": "application/json; charset=utf-8" });
  res.end(JSON.stringify(body));
}

function sendPage(res: ServerResponse): void {
  res.writeHead(200, {
    ...COMMON_HEADERS,
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": PAGE_CSP,
  });
  res.end(PAGE_HTML);
}

const refused = (res: ServerResponse, refusal: NonNullable<Refusal>) =>
  sendJson(res, { status: refusal.status, body: { error: refusal.error } });

export function createDashboard(input: DashboardOptions): Dashboard {
  const options = resolveDashboardOptions(input);
  const { logger, token } = options;
  const sampler = new Sampler(options.pool, options.schema, options.sampleIntervalMs, options.samples, logger);

  async function act(req: IncomingMessage, res: ServerResponse, action: "retry" | "purge"): Promise<void> {
    const who = requester(req, token);
    const refusal: Refusal = options.allowActions
      ? crossSiteRefusal(req, token)
      : { status: 403, error: "the dashboard is read-only: start it with --allow-actions to retry or purge" };
    if (refusal) {
      logger.warn("dashboard action refused", { action, reason: refusal.error, ...who });
      return refused(res, refusal);
    }
    const request = actionRequest(action, await readJson(req));
    const answer = await runAction(options, request);
    const { count } = answer.body as { count: number };
    const fields = { action, source: request.source, filter: request.filter, all: request.all, count, ...who };
    logger.info(request.dryRun ? "dashboard action previewed" : "dashboard action done", fields);
    sendJson(res, answer);
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) {
    const method = req.method ?? "GET";
    const isRead = method === "GET" || method === "HEAD";
    if (path === "/ui" || path === "/ui/") {
      if (!isRead) return sendJson(res, { status: 405, body: { error: "GET only" } });
      return sendPage(res);
    }
    if (path === "/ui/api/dead-letters/retry" || path === "/ui/api/dead-letters/purge") {
      if (method !== "POST") return sendJson(res, { status: 405, body: { error: "POST only" } });
      return act(req, res, path.endsWith("retry") ? "retry" : "purge");
    }
    if (!isRead) return sendJson(res, { status: 405, body: { error: "GET only" } });
    switch (path) {
      case "/ui/api/overview":
        return sendJson(res, overview(options, sampler));
      case "/ui/api/doctor":
        return sendJson(res, await doctorReport(options));
      case "/ui/api/dead-letters":
        return sendJson(res, await deadLetters(options, query));
      default:
        return sendJson(res, { status: 404, body: { error: "not found" } });
    }
  }

  return {
    options: {
      schema: options.schema,
      logger,
      allowActions: options.allowActions,
      sampleIntervalMs: options.sampleIntervalMs,
      samples: options.samples,
    },
    start: () => sampler.start(),
    close: () => sampler.stop(),
    async handle(req, res) {
      const url = new URL(req.url ?? "/", "http://dashboard.invalid");
      const path = url.pathname;
      if (path !== "/ui" && !path.startsWith("/ui/")) return false;
      const refusal = admit(req, token, path === "/ui" || path === "/ui/");
      if (refusal) {
        refused(res, refusal);
        return true;
      }
      try {
        await route(req, res, path, url.searchParams);
      } catch (error) {
        if (res.headersSent) res.end();
        else if (error instanceof OutboxConfigError) sendJson(res, { status: 400, body: { error: error.message } });
        else {
          logger.warn("dashboard request failed", { path, error: (error as Error)?.message ?? String(error) });
          sendJson(res, { status: 500, body: { error: `failed: ${(error as Error)?.message ?? String(error)}` } });
        }
      }
      return true;
    },
  };
}

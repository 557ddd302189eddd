// What the dashboard's tests share: rows seeded straight into the tables (a backlog, outbox dead letters, dead inbox
// rows, one of each carrying markup in its routing key and error), a dashboard served in-process on 127.0.0.1, raw
// HTTP requests (node:http, so that a test can set Host and Origin as an attacker would), and a logger that keeps
// its lines.
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, request } from "node:http";
import type pg from "pg";
import { createDashboard, type Dashboard } from "../../src/cli/dashboard/dashboard.js";
import type { DashboardOptions } from "../../src/cli/dashboard/options.js";

/** Markup that would run if the page ever parsed a text from the database as HTML. */
export const XSS_ERROR = `<img src=x onerror="window.__xss='error'">boom`;
export const XSS_KEY = `<img src=x onerror=window.__xss='key'>`;

export const OUTBOX_DEAD = [
  { id: 1, exchange: "shop", routingKey: "order.created", error: "NO_ROUTE: Unroutable" },
  { id: 2, exchange: "shop", routingKey: "order.cancelled", error: "nacked by the broker" },
  { id: 3, exchange: "billing", routingKey: "invoice.eu", error: "406 PRECONDITION_FAILED" },
  { id: 4, exchange: "billing", routingKey: XSS_KEY, error: XSS_ERROR },
];

/** Empties the tables, then: `backlog` due outbox rows, the four dead letters above, two dead inbox rows. */
export async function seed(pool: pg.Pool, backlog: number): Promise<Map<number, string>> {
  await pool.query("DELETE FROM outbox_dead_letter; DELETE FROM outbox_message; DELETE FROM inbox_message");
  await pool.query(
    `INSERT INTO outbox_message (message_id, exchange, routing_key, payload, available_at)
     SELECT gen_random_uuid(), 'shop', 'order.backlog', '{"n":1}', now() - interval '3 s' FROM generate_series(1, $1)`,
    [backlog],
  );
  const messageIds = new Map<number, string>();
  for (const d of OUTBOX_DEAD) {
    const messageId = randomUUID();
    messageIds.set(d.id, messageId);
    await pool.query(
      `INSERT INTO outbox_dead_letter (id, message_id, exchange, routing_key, payload, attempts, last_error, created_at,
                                       failed_at)
       VALUES ($1, $2, $3, $4, '{"dead":true}', 10, $5, now() - interval '2 h', now() - interval '1 h')`,
      [d.id, messageId, d.exchange, d.routingKey, d.error],
    );
  }
  await pool.query(
    `INSERT INTO inbox_message (message_id, handler, exchange, routing_key, payload, status, attempts, last_error)
     VALUES ($1, 'ship', 'shop', 'order.created', '{}', 'dead', 5, 'carrier down'),
            ($2, 'bill', 'billing', $3, '{}', 'dead', 5, $4)`,
    [randomUUID(), randomUUID(), XSS_KEY, XSS_ERROR],
  );
  return messageIds;
}

/** A logger that keeps every line, to check what an action logged (and that no token is in it). */
export function recordingLogger() {
  const lines: Array<{ level: string; message: string; fields: Record<string, unknown> | undefined }> = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, message, fields });
  return {
    lines,
    logger: { info: at("info"), warn: at("warn"), error: at("error") },
    text: () => JSON.stringify(lines),
  };
}

export interface Served {
  dashboard: Dashboard;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** The dashboard on an HTTP server of its own at 127.0.0.1 (port chosen by the system), sampling started. */
export async function serve(options: DashboardOptions): Promise<Served> {
  const dashboard = createDashboard(options);
  dashboard.start();
  const server = createServer((req, res) => {
    dashboard.handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return {
    dashboard,
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      dashboard.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => any;
}

/** One request, with exactly the headers given (a JSON body sets its content-type unless one is given). */
export function call(
  port: number,
  method: string,
  path: string,
  { headers = {}, body }: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<Answer> {
  const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const sent = { ...(data !== undefined ? { "content-type": "application/json" } : {}), ...headers };
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers: sent }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        text += chunk;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }),
      );
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** The header the page sets on its requests. */
export const PAGE = { "x-prisma-outbox-dashboard": "1" };

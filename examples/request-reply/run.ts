// `npm run example:request-reply [-- --once]`: the request-reply example, set up and run.
//   1. find PostgreSQL and RabbitMQ as the tests do (DATABASE_URL / AMQP_URL, Docker, or local servers);
//   2. create the database prisma_outbox_request_reply afresh and apply examples/prisma/migrations;
//   3. start the worker (worker.ts) and the web server (server.ts, PORT or 3000);
//   4. make one report over HTTP as a client would (POST, poll the status, follow the 303 to the result), printing
//      each step; then keep serving for a browser (http://127.0.0.1:3000/) until Ctrl-C, or exit with --once.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import pg from "pg";
import { openSchemaEngine } from "../../test/support/schema-engine.ts";
import { resolveServers, withDatabase } from "../../test/support/servers.ts";

const DATABASE = "prisma_outbox_request_reply";
const root = fileURLToPath(new URL("../../", import.meta.url));
const once = process.argv.includes("--once");
const port = Number(process.env.PORT ?? 3000);
const log = (line: string) => console.log(`[example] ${line}`);
const children: ChildProcess[] = [];

function start(name: string, script: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        console.log(`[${name}]${" ".repeat(Math.max(1, 8 - name.length))}${line}`);
        if (/^(worker ready|listening on)/.test(line)) resolve(child);
      });
    }
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
  });
}

async function main(): Promise<void> {
  const servers = await resolveServers();
  const admin = new pg.Client({ connectionString: servers.databaseUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DATABASE}`);
  await admin.end();
  const databaseUrl = withDatabase(servers.databaseUrl, DATABASE);
  // `npx prisma migrate deploy --config examples/prisma.config.ts` does the same where Prisma's engine downloads.
  const engine = await openSchemaEngine(databaseUrl);
  await engine.applyMigrations(`${root}examples/prisma/migrations`);
  await engine.close();
  log(`created and migrated database ${DATABASE} (PostgreSQL: ${servers.source.database})`);
  // The durable work queue outlives a run: messages left by an interrupted run would name requests of the old database.
  const connection = await amqp.connect(servers.amqpUrl);
  await (await connection.createChannel()).deleteQueue("reports.work");
  await connection.close();

  const env = { DATABASE_URL: databaseUrl, AMQP_URL: servers.amqpUrl, PORT: String(port) };
  await start("worker", "examples/request-reply/worker.ts", env);
  await start("web", "examples/request-reply/server.ts", env);
  const base = `http://127.0.0.1:${port}`;

  const posted = await fetch(`${base}/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": `example-${Date.now()}` },
    body: JSON.stringify({ title: "November" }),
  });
  const location = posted.headers.get("location")!;
  log(`POST /reports -> ${posted.status}, Location: ${location}, Retry-After: ${posted.headers.get("retry-after")}`);
  for (;;) {
    const res = await fetch(`${base}${location}`, { redirect: "manual" });
    if (res.status === 303) {
      log(`GET ${location} -> 303 See Other, Location: ${res.headers.get("location")}`);
      const result = await fetch(`${base}${res.headers.get("location")}`);
      log(`GET ${res.headers.get("location")} -> ${result.status} ${JSON.stringify(await result.json())}`);
      break;
    }
    const body = (await res.json()) as { status: string; progress: { percent: number; message?: string } };
    log(`GET ${location} -> ${res.status} ${body.status} ${body.progress.percent}% ${body.progress.message ?? ""}`);
    if (!["pending", "running"].includes(body.status)) throw new Error(`the report ended ${body.status}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  if (once) return;
  log(`open ${base}/ in a browser and press the button; Ctrl-C stops everything`);
  await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGTERM");
        }),
    ),
  );
}

main().then(
  async () => {
    await stopAll();
    process.exit(0);
  },
  async (error: Error) => {
    console.error(`[example] failed: ${error.message}`);
    await stopAll();
    process.exit(1);
  },
);

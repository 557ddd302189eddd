// The example's database, whichever way the example runs (examples/run.ts with servers, examples/run-embedded.ts
// without): created afresh, migrated as `prisma migrate deploy` does, and checked at the end for one invoice per
// order. One module, so that both runs make and judge the same database.
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { openSchemaEngine } from "../../test/support/schema-engine.ts";
import { withDatabase } from "../../test/support/servers.ts";

export const DATABASE = "prisma_outbox_example";
export const root = fileURLToPath(new URL("../../", import.meta.url));
const migrationsDir = `${root}examples/prisma/migrations`;

/** Prints a line of `source` (the example, a child process or a part of the one-process run), names aligned. */
export const print = (source: string, line: string) =>
  console.log(`[${source}]${" ".repeat(Math.max(1, 9 - source.length))}${line}`);
export const log = (line: string) => print("example", line);

/** Drops and creates the example's database on the server of `adminUrl`; returns its URL. */
export async function recreateDatabase(adminUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // FORCE: a worker left over from an earlier run must not keep the database from being dropped.
    await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }
  return withDatabase(adminUrl, DATABASE);
}

/**
 * Resolves once billing has made `count` invoices; rejects if `failed()` names a reason (billing is gone) or
 * `timeoutMs` passes.
 */
export async function waitForInvoices(
  db: pg.Pool,
  count: number,
  timeoutMs: number,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let made = 0;
  for (;;) {
    made = Number((await db.query('SELECT count(*) FROM "Invoice"')).rows[0].count);
    if (made >= count) return;
    const reason = failed();
    if (reason !== undefined) throw new Error(`${reason} before making every invoice (${made} of ${count})`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for billing: ${made} of ${count} invoices`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The example must carry the shipped outbox migration unchanged, or `migrate deploy` would apply another schema. */
export async function checkShippedMigrationsCopied(): Promise<void> {
  const shipped = `${root}prisma/migrations`;
  for (const entry of await readdir(shipped, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const file = `${entry.name}/migration.sql`;
    const copy = await readFile(`${migrationsDir}/${file}`, "utf8").catch(() => undefined);
    if (copy !== (await readFile(`${shipped}/${file}`, "utf8"))) {
      throw new Error(`examples/prisma/migrations/${file} is not a copy of prisma/migrations/${file}: copy it again`);
    }
  }
}

/**
 * The native schema engine `prisma migrate deploy` runs, when this machine has one: PRISMA_SCHEMA_ENGINE_BINARY, or
 * the file Prisma's install step downloads beside @prisma/engines. Where that download was not possible (a machine
 * that reaches only the npm registry), there is none, and asking `migrate deploy` would only fail on the download.
 */
function nativeSchemaEngine(): string | undefined {
  const configured = process.env.PRISMA_SCHEMA_ENGINE_BINARY;
  if (configured !== undefined && configured !== "" && existsSync(configured)) return configured;
  try {
    const prisma = createRequire(createRequire(import.meta.url).resolve("prisma/package.json"));
    const dir = dirname(prisma.resolve("@prisma/engines/package.json"));
    const file = readdirSync(dir).find((name) => name.startsWith("schema-engine-"));
    return file === undefined ? undefined : join(dir, file);
  } catch {
    return undefined;
  }
}

/** Applies the migrations as `prisma migrate deploy` does; returns how, for the log. */
export async function migrate(url: string): Promise<string> {
  const native = nativeSchemaEngine();
  if (native !== undefined) {
    const prisma = createRequire(import.meta.url).resolve("prisma/build/index.js");
    await promisify(execFile)(
      process.execPath,
      [prisma, "migrate", "deploy", "--config", "examples/prisma.config.ts"],
      { cwd: root, env: { ...process.env, DATABASE_URL: url }, timeout: 120_000 },
    );
    return `prisma migrate deploy (native schema engine ${native})`;
  }
  // The same engine compiled to WebAssembly (@prisma/schema-engine-wasm, an npm package), as the tests migrate.
  const engine = await openSchemaEngine(url);
  try {
    await engine.applyMigrations(migrationsDir);
  } finally {
    await engine.close();
  }
  return (
    "Prisma's schema engine compiled to WebAssembly, as `prisma migrate deploy` would (this machine has no native " +
    "engine: Prisma downloads it from its own servers, not from npm)"
  );
}

/**
 * After everything has stopped, so nothing can change any more: a line per invoice, and the proof that each
 * order.created had exactly one effect. The Invoice table has no unique constraint, so a message handled twice would
 * show as a second row, and one never handled as a missing one.
 */
export async function reportInvoices(db: pg.Pool): Promise<void> {
  const invoices = await db.query<{ id: number; orderNumber: string; amount: number; messageId: string }>(
    'SELECT id, "orderNumber", amount, "messageId" FROM "Invoice" ORDER BY "orderNumber", id',
  );
  for (const i of invoices.rows) {
    log(`invoice ${i.id}: order ${i.orderNumber}, amount ${i.amount}, for message ${i.messageId}`);
  }
  const { rows } = await db.query<{ orders: number; invoiced: number; processed: number }>(`
    SELECT (SELECT count(*) FROM "Order")::int AS orders,
           (SELECT count(DISTINCT i."orderNumber") FROM "Invoice" i JOIN "Order" o ON o.number = i."orderNumber")::int
             AS invoiced,
           (SELECT count(*) FROM inbox_message WHERE handler = 'create-invoice' AND status = 'processed')::int
             AS processed`);
  const { orders: committed, invoiced, processed } = rows[0]!;
  const made = invoices.rows.length;
  if (made !== committed || invoiced !== committed || processed !== committed) {
    throw new Error(
      `expected exactly one invoice per order: ${committed} orders, ${made} invoices for ${invoiced} of them, ` +
        `${processed} order.created messages processed by billing's inbox`,
    );
  }
  log(
    `billing: ${made} invoices for ${committed} orders, exactly one each, although one message was delivered twice. ` +
      "A duplicate effect cannot happen: the inbox stores each (messageId, handler) once, and the handler's writes " +
      "commit with its processed mark (for redeliveries within the dedupe window, 7 days by default)",
  );
}

/** The first order.created billing stored, as it stored it: what a redelivery would carry again. */
export async function storedOrderCreated(db: pg.Pool): Promise<{ messageId: string; payload: string }> {
  const { rows } = await db.query<{ message_id: string; payload: string }>(
    "SELECT message_id, payload::text AS payload FROM inbox_message WHERE handler = 'create-invoice' ORDER BY id LIMIT 1",
  );
  const { message_id: messageId, payload } = rows[0]!;
  return { messageId, payload };
}

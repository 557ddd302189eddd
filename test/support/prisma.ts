// A Prisma client of the example app (test/prisma/schema) on a database of the test file's own.
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { afterAll, inject } from "vitest";
import { PrismaClient } from "../generated/prisma/client.js";
import { createTestDatabase } from "./database.js";

export { PrismaClient };

/** Creates this file's database (dropped after the file) and returns its URL. Call at the top of a test file. */
export async function useTestDatabase(): Promise<string> {
  const db = await createTestDatabase(inject("databaseUrl"), inject("templateDatabase"));
  afterAll(() => db.drop());
  return db.url;
}

/**
 * The example app's client, built as docs/operating.md recommends ("A lost database connection"): a pool whose
 * clients listen for their 'error' from connect to end. `new PrismaPg({ connectionString })` leaves a moment without
 * a listener (test/prisma/lost-connection.test.ts), which killed an inbox worker of reliability row I4.
 */
export function newPrismaClient(url: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(guardedPool(url), { disposeExternalPool: true }) });
}

/** The pool of docs/operating.md ("A lost database connection"). */
export function guardedPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url });
  pool.on("error", () => {}); // an idle connection lost: the pool drops it
  pool.on("connect", (client) => client.on("error", () => {})); // one in use: its statement fails, and says why
  return pool;
}

/**
 * A plain pg pool for checking rows behind Prisma's back. pool.end() resolves before its clients' sockets are closed,
 * so the DROP DATABASE ... WITH (FORCE) after a file may terminate them (57P01): without a listener, the pool would
 * rethrow that as an uncaught error.
 */
export function newPool(url: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on("error", () => {});
  return pool;
}

/**
 * Relay sessions with a batch open (claimed and waiting for the broker's confirms): idle in transaction. A probe
 * that takes no row locks, so it can never make a relay's SKIP LOCKED claim miss rows.
 */
export async function relayBatchesOpen(pool: pg.Pool): Promise<number> {
  const r = await pool.query(
    `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
     AND application_name = 'prisma-outbox relay' AND state = 'idle in transaction'`,
  );
  return Number(r.rows[0].count);
}

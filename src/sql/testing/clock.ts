// What the test kit's clock (src/testing/clock.ts) installs in a database, so that the relay's and the inbox's
// statements can ask for its time: a schema of the kit's own, a table of offsets (one row per clock: several clocks,
// from several test files, may share a database), and a function "now for this clock" = now() + the clock's offset.
// - A function of the clock's id, not a session setting: the relay and the inbox run their statements on pools of
//   their own, whose sessions a test cannot reach; a table row is seen by every session once committed. The clock
//   commits the new offset before it wakes the relay and the inbox, so their next claim sees it.
// - STABLE: one value within a statement (now() is the transaction's start; the offset is read in the statement's
//   snapshot), so it may stand in an index condition as now() does: the claims keep their index walks.
// - now() + offset, not a stored time: the clock runs with real time between moves (a handler's timeout, a lease
//   still pass as they would), and an offset that only grows keeps it at or ahead of the database's own time, which
//   the write side stamps new rows with (sql/outbox/insert.ts): they are due at once, as in production.
// - A clock without a row (never installed here, or its row deleted) is the database's now().
// - Installing is idempotent and safe when several test files install at once: CREATE ... IF NOT EXISTS is not (two
//   sessions both see nothing and both create: 23505 or 42P07), so every install first takes one transaction-level
//   advisory lock. The statements are one simple-protocol query: one implicit transaction, so the lock holds until
//   all of them committed, and a failure leaves nothing half made.
import { quoteIdentifier, quoteLiteral } from "../names.js";

/** The schema the test kit creates in a database it is installed in. */
export const TEST_CLOCK_SCHEMA = "prisma_outbox_testing";

const schema = quoteIdentifier(TEST_CLOCK_SCHEMA);
const table = `${schema}.${quoteIdentifier("clock")}`;
const fn = `${schema}.${quoteIdentifier("now")}`;

/** A clock's id: short and plain, so that its literal reads well in pg_stat_activity and can inject nothing. */
const CLOCK_ID = /^[A-Za-z0-9_-]{1,64}$/;

function clockId(id: string): string {
  if (!CLOCK_ID.test(id)) throw new TypeError(`Expected a clock id of 1 to 64 letters, digits, _ or -, got ${id}`);
  return quoteLiteral(id);
}

function offsetMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new TypeError(`Expected a finite offset >= 0 ms, got ${ms}`);
  return String(ms);
}

/** The clock's "now" in a statement: `"prisma_outbox_testing"."now"(E'<id>')` (the Clock's `sql`). */
export function testClockNowSql(id: string): string {
  return `${fn}(${clockId(id)})`;
}

/** Creates the schema, the table and the function where missing, and sets this clock's offset (see above). */
export function installTestClockSql(id: string, offset: number): string {
  return `SELECT pg_advisory_xact_lock(hashtextextended('prisma-outbox:testing-clock', 0));
CREATE SCHEMA IF NOT EXISTS ${schema};
CREATE TABLE IF NOT EXISTS ${table} (id text PRIMARY KEY, offset_ms float8 NOT NULL DEFAULT 0);
CREATE OR REPLACE FUNCTION ${fn}(clock_id text) RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT now() + make_interval(secs => coalesce((SELECT offset_ms FROM ${table} WHERE id = clock_id), 0) / 1000)
$$;
INSERT INTO ${table} (id, offset_ms) VALUES (${clockId(id)}, ${offsetMs(offset)})
  ON CONFLICT (id) DO UPDATE SET offset_ms = excluded.offset_ms`;
}

/**
 * Sets a clock's offset: its whole offset, not a step, so a move sent twice (a retry) ends at the same time. An upsert:
 * a row deleted meanwhile comes back. $1: id, $2: offset ms.
 */
export function setTestClockOffsetSql(): string {
  return `INSERT INTO ${table} (id, offset_ms) VALUES ($1::text, $2::float8)
ON CONFLICT (id) DO UPDATE SET offset_ms = excluded.offset_ms`;
}

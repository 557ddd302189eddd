import type { OutboxNames } from "./names.js";

/**
 * The relay's start-up check that the outbox table exists where it looks for it: reads no row (LIMIT 0), takes only
 * an ACCESS SHARE lock for the statement, and fails with 42P01 (undefined_table) when the table, or the schema, is
 * missing, which the relay turns into an error that says to migrate. Run on a connection the relay needs anyway, so it
 * also proves the database answers before the broker is even tried.
 */
export function checkTableSql(names: OutboxNames): string {
  return `SELECT 1 FROM ${names.outboxTable} LIMIT 0`;
}

/** PostgreSQL's code for a missing table (or schema of a qualified name). */
export const UNDEFINED_TABLE = "42P01";

import type { InboxNames } from "../names.js";

/**
 * The inbox's start-up check, shaped like the relay's (sql/check-table.ts): reads no row (LIMIT 0), fails with 42P01
 * when the table, or its schema, is missing, and proves the database answers before the broker is tried.
 */
export function checkInboxTableSql(names: InboxNames): string {
  return `SELECT 1 FROM ${names.inboxTable} LIMIT 0`;
}

import { INBOX_TABLE, type OutboxNames } from "../names.js";

// The backlog gauges and health() read these, at most once per few seconds and only when something asks
// (telemetry/backlog-probe.ts). One statement and one pass each:
// - the outbox: count(*) with FILTERs over the table. Rows live only until published, so the table is the backlog
//   itself: small when the relay keeps up, and when it does not, a scan of it every few seconds is what the answer
//   costs. min(available_at) of due rows is the oldest due row: for a new
//   message available_at is its write time; for a retry, the end of its backoff.
// - the inbox: processed rows stay as dedupe records, so only `status = 'pending'` is read, through the
//   (status, available_at, id) index; leased rows (a handler running) have available_at in the future and count
//   as deferred.
// Ages are computed by the database (its clock, the one available_at was written with).

/** due, deferred, oldest_due_ms of the outbox. */
export function outboxBacklogSql(names: OutboxNames): string {
  return `SELECT count(*) FILTER (WHERE available_at <= now())::int AS due,
  count(*) FILTER (WHERE available_at > now())::int AS deferred,
  coalesce(extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now())) * 1000, 0)::float8
    AS oldest_due_ms
FROM ${names.outboxTable}`;
}

/** due, deferred, oldest_due_ms of the inbox's pending rows. */
export const INBOX_BACKLOG_SQL = `SELECT count(*) FILTER (WHERE available_at <= now())::int AS due,
  count(*) FILTER (WHERE available_at > now())::int AS deferred,
  coalesce(extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now())) * 1000, 0)::float8
    AS oldest_due_ms
FROM ${INBOX_TABLE} WHERE status = 'pending'`;

export interface BacklogRow {
  due: number;
  deferred: number;
  oldest_due_ms: number;
}

// The doctor's queue checks (src/ops/doctor-queues.ts) in their cheap form: bounded reads through the claim's own
// indexes, so that running them every minute on a table of millions costs what one claim costs. The exact counts of
// `checks: "all"` are the status command's statements (sql/ops/status.ts), not a second copy.
import type { InboxNames, OutboxNames } from "../names.js";

/**
 * The outbox's oldest due row through the (available_at, id) index (LIMIT 1: the first live entry; it walks the dead
 * entries before it, as the relay's claim does), and the due rows counted up to $1 (a LIMIT inside: never more than
 * $1 rows read). oldest_due_ms NULL when nothing is due.
 */
export function outboxBacklogCappedSql(names: OutboxNames): string {
  return `SELECT (SELECT count(*) FROM (SELECT 1 FROM ${names.outboxTable} WHERE available_at <= now() LIMIT $1::int) d)::int
    AS due,
  (SELECT extract(epoch FROM now() - available_at) * 1000 FROM ${names.outboxTable}
   WHERE available_at <= now() ORDER BY available_at, id LIMIT 1)::float8 AS oldest_due_ms`;
}

/** The inbox's pending due rows, the same way, through the (status, available_at, id) index. */
export function inboxBacklogCappedSql(names: InboxNames): string {
  return `SELECT (SELECT count(*) FROM (SELECT 1 FROM ${names.inboxTable}
                            WHERE status = 'pending' AND available_at <= now() LIMIT $1::int) d)::int AS due,
  (SELECT extract(epoch FROM now() - available_at) * 1000 FROM ${names.inboxTable}
   WHERE status = 'pending' AND available_at <= now() ORDER BY status, available_at, id LIMIT 1)::float8
    AS oldest_due_ms`;
}

/**
 * The outbox's dead letters by age ($1: the window in ms): how many, how many failed within the window, the oldest and
 * the newest failure. A scan of the dead-letter table (failed_at has no index: nothing else reads by it), so only in
 * `checks: "all"`; the relay counts its dead letters as they happen (metrics, events) meanwhile.
 */
export function outboxDeadLetterAgesSql(names: OutboxNames): string {
  return `SELECT count(*)::int AS total,
  count(*) FILTER (WHERE failed_at > now() - make_interval(secs => $1::float8 / 1000))::int AS recent,
  (extract(epoch FROM now() - min(failed_at)) * 1000)::float8 AS oldest_ms,
  (extract(epoch FROM now() - max(failed_at)) * 1000)::float8 AS newest_ms
FROM ${names.deadLetterTable}`;
}

/**
 * The inbox's dead rows by age, the same figures ($1: the window in ms), through the index's `status = 'dead'` range.
 * A dead row's available_at is when its last attempt was scheduled, so roughly when it died; received_at would be
 * when it arrived.
 */
export function inboxDeadAgesSql(names: InboxNames): string {
  return `SELECT count(*)::int AS total,
  count(*) FILTER (WHERE available_at > now() - make_interval(secs => $1::float8 / 1000))::int AS recent,
  (extract(epoch FROM now() - min(available_at)) * 1000)::float8 AS oldest_ms,
  (extract(epoch FROM now() - max(available_at)) * 1000)::float8 AS newest_ms
FROM ${names.inboxTable} WHERE status = 'dead'`;
}

export interface BacklogCappedRow {
  due: number;
  oldest_due_ms: number | null;
}

export interface DeadAgesRow {
  total: number;
  recent: number;
  oldest_ms: number | null;
  newest_ms: number | null;
}

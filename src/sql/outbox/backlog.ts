import type { OutboxNames } from "../names.js";

// The relay's backlog gauges and health() read this, at most once per few seconds and only when something asks
// (telemetry/backlog-probe.ts), in one statement and one pass: count(*) with FILTERs over the table. Rows live only
// until published, so the table is the backlog itself: small when the relay keeps up, and when it does not, a scan of
// it every few seconds is what the answer costs. min(available_at) of due rows is the
// oldest due row: for a new message available_at is its write time; for a retry, the end of its backoff. The age is
// computed by the database (its clock, the one available_at was written with). The inbox's: sql/inbox/backlog.ts.

/** due, deferred, oldest_due_ms of the outbox (oldest_due_ms 0 when nothing is due). */
export function outboxBacklogGaugesSql(names: OutboxNames): string {
  return `SELECT count(*) FILTER (WHERE available_at <= now())::int AS due,
  count(*) FILTER (WHERE available_at > now())::int AS deferred,
  coalesce(extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now())) * 1000, 0)::float8
    AS oldest_due_ms
FROM ${names.outboxTable}`;
}

export interface BacklogRow {
  due: number;
  deferred: number;
  oldest_due_ms: number;
}

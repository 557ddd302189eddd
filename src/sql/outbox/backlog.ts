import type { OutboxNames } from "../names.js";

// The relay's backlog gauges and health() read this, at most once per few seconds and only when something asks
// (telemetry/backlog-probe.ts), in one statement and one pass: count(*) with FILTERs over the table. Rows live only
// until published, so the table is the backlog itself: small when the relay keeps up, and when it does not, a scan of
// it every few seconds is what the answer costs. min(available_at) of due rows is the
// oldest due row: for a new message available_at is its write time; for a retry, the end of its backoff. Due and age
// are computed by the database, with the relay's clock (names.now: now(), the clock available_at was written with; a
// test kit's clock is ahead of it by its offset), so a row counts as due exactly when a claim would take it. The
// inbox's: sql/inbox/backlog.ts.

/** due, deferred, oldest_due_ms of the outbox (oldest_due_ms 0 when nothing is due). */
export function outboxBacklogGaugesSql(names: OutboxNames): string {
  return `SELECT count(*) FILTER (WHERE available_at <= ${names.now})::int AS due,
  count(*) FILTER (WHERE available_at > ${names.now})::int AS deferred,
  coalesce(extract(epoch FROM ${names.now} - min(available_at) FILTER (WHERE available_at <= ${names.now})) * 1000, 0)::float8
    AS oldest_due_ms
FROM ${names.outboxTable}`;
}

export interface BacklogRow {
  due: number;
  deferred: number;
  oldest_due_ms: number;
}

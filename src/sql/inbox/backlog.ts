import type { InboxNames } from "../names.js";

// The inbox's backlog gauges and health() read this, at most once per few seconds and only when something asks
// (telemetry/backlog-probe.ts), in one statement and one pass. Processed rows stay as dedupe records, so only
// `status = 'pending'` is read, through the (status, available_at, id) index; leased rows (a handler running) have
// available_at in the future and count as deferred. Due and age are computed by the database, with the inbox's clock
// (names.now: now(), or the test kit's clock, the one available_at was written with by the claims and failures), so a
// row counts as due exactly when a claim would take it.

/** due, deferred, oldest_due_ms of the inbox's pending rows (oldest_due_ms 0 when nothing is due). */
export function inboxBacklogGaugesSql(names: InboxNames): string {
  return `SELECT count(*) FILTER (WHERE available_at <= ${names.now})::int AS due,
  count(*) FILTER (WHERE available_at > ${names.now})::int AS deferred,
  coalesce(extract(epoch FROM ${names.now} - min(available_at) FILTER (WHERE available_at <= ${names.now})) * 1000, 0)::float8
    AS oldest_due_ms
FROM ${names.inboxTable} WHERE status = 'pending'`;
}

export type { BacklogRow } from "../outbox/backlog.js";

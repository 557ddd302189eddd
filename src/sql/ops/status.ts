// `prisma-outbox status`: what is queued, what died and who is connected. Read-only statements that take no row locks
// (plain SELECTs never block the relay's SKIP LOCKED claims, nor are blocked by them).
// The counts read every row of the tables they count: a status check is run by a person or a probe every few seconds
// at most, and an exact backlog is what it is for. On a backlog of millions it takes a second or two, not minutes.
// "Due" is PostgreSQL's now(): an operator's command runs on the database's time, never on a test's clock.

import { WAITING_PREFIX } from "../inbox/unhandled.js";
import { type InboxNames, type OutboxNames, quoteLiteral } from "../names.js";

/**
 * The outbox's counts for status: due now, deferred (retry backoff or a writer's delay), and the age of the oldest
 * due row (NULL when nothing is due, where the gauges' statement, sql/outbox/backlog.ts, says 0), in one scan.
 */
export function outboxStatusCountsSql(names: OutboxNames): string {
  return `SELECT count(*) FILTER (WHERE available_at <= now())::int AS due,
       count(*) FILTER (WHERE available_at > now())::int AS deferred,
       (extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now())) * 1000)::float8
         AS oldest_due_age_ms
FROM ${names.outboxTable}`;
}

/** Dead letters per exchange, most first, with the latest failure. $1: top N. */
export function deadLettersByExchangeSql(names: OutboxNames): string {
  return `SELECT exchange, count(*)::int AS count, max(failed_at) AS last_failed_at
FROM ${names.deadLetterTable} GROUP BY exchange ORDER BY count(*) DESC, exchange LIMIT $1::int`;
}

/**
 * Errors are grouped on their first line, cut at 200 characters: the text after that tends to hold per-message
 * details (ids, positions) that would make every error a group of one.
 */
const ERROR_KEY = "left(split_part(coalesce(last_error, '(none)'), E'\\n', 1), 200)";

/** Dead letters per error, most first. $1: top N. */
export function deadLettersByErrorSql(names: OutboxNames): string {
  return `SELECT ${ERROR_KEY} AS error, count(*)::int AS count
FROM ${names.deadLetterTable} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1::int`;
}

export function deadLetterTotalSql(names: OutboxNames): string {
  return `SELECT count(*)::int AS count FROM ${names.deadLetterTable}`;
}

/**
 * Sessions of this database by application name, for the names the relay ('prisma-outbox relay' for its batches,
 * 'prisma-outbox listener' for its LISTEN) and the inbox ('prisma-outbox inbox') give their own connections.
 * A relay or inbox that runs on the app's pg.Pool carries the app's name and is not seen here. $1: names.
 */
export const CONNECTED_SQL = `SELECT application_name, count(*)::int AS sessions
FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1::text[])
GROUP BY application_name`;

/**
 * The inbox's counts for status, by state, in one scan. Pending rows not due yet are either leased (a processor
 * claimed them and runs their handler: the claim moves available_at forward by the lease) or waiting for a retry's
 * backoff; the table does not tell these apart. `retrying`: pending rows that failed at least once. `waiting`:
 * deliveries no handler took yet, under a queue's placeholder handler (inbox/unhandled.ts); counted apart, not as due
 * or deferred work (no handler of the inbox that stored them can do it). Counted in the same scan, so free.
 */
export function inboxStatusCountsSql(names: InboxNames): string {
  const waiting = `handler LIKE ${quoteLiteral(`${WAITING_PREFIX}%`)}`;
  return `SELECT
  count(*) FILTER (WHERE status = 'pending' AND available_at <= now() AND NOT ${waiting})::int AS due,
  count(*) FILTER (WHERE status = 'pending' AND available_at > now() AND NOT ${waiting})::int AS deferred,
  count(*) FILTER (WHERE status = 'pending' AND ${waiting})::int AS waiting,
  count(*) FILTER (WHERE status = 'pending' AND last_error IS NOT NULL)::int AS retrying,
  count(*) FILTER (WHERE status = 'processed')::int AS processed,
  count(*) FILTER (WHERE status = 'dead')::int AS dead,
  (extract(epoch FROM now() - min(available_at) FILTER (WHERE status = 'pending' AND available_at <= now()
    AND NOT ${waiting})) * 1000)::float8
    AS oldest_due_age_ms
FROM ${names.inboxTable}`;
}

/** Dead inbox rows per handler ('' for invalid deliveries), most first. $1: top N. */
export function inboxDeadByHandlerSql(names: InboxNames): string {
  return `SELECT handler, count(*)::int AS count
FROM ${names.inboxTable} WHERE status = 'dead' GROUP BY handler ORDER BY count(*) DESC, handler LIMIT $1::int`;
}

/** Dead inbox rows per error (grouped like the outbox's), most first. $1: top N. */
export function inboxDeadByErrorSql(names: InboxNames): string {
  return `SELECT ${ERROR_KEY} AS error, count(*)::int AS count
FROM ${names.inboxTable} WHERE status = 'dead' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1::int`;
}

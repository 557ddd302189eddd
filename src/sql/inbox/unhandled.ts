import { type InboxNames, quoteLiteral } from "../names.js";

/**
 * The placeholder handlers' names start with this (inbox/unhandled.ts: the prefix and the queue), and handler names
 * may not (inbox/handler-options.ts). Brackets and a space, so that `status` and `dead-letters` show it as what it is;
 * no LIKE wildcard in it, so `handler LIKE prefix || '%'` finds every placeholder (ops/status.ts).
 */
export const WAITING_PREFIX = "(unhandled) ";

// Deliveries that no handler of the receiving inbox took, waiting (`unhandledGraceMs` > 0) for an inbox that has a
// handler for them (a newer version during a rolling deploy: docs/inbox.md#rolling-deploys). They are pending rows
// under the queue's placeholder handler (inbox/unhandled.ts), attempts 0, available_at = received + grace: the
// processors' due claims take only their own handlers' rows (claim.ts), so nothing claims them, and no attempt is
// spent while they wait. Every inbox of the queue passes over them on a timer (inbox/unhandled.ts):
// 1. waitingInboxSql lists them (their routing key and type; topic patterns are matched in JavaScript, as at receive);
// 2. rerouteInboxSql moves the ones it has handlers for to those handlers;
// 3. expireInboxWaitingSql makes the rest dead once their grace is over.

/**
 * The waiting rows of one placeholder, oldest first, a page after id $3 (keyset: a page this inbox cannot take does
 * not hide the ones after it). $1: placeholder, $2: limit. Walks the (status, available_at, id)
 * index over the pending rows and filters the placeholder (no index leads with handler; adding one would be a
 * migration for every user); the pass runs at the sweeper's pace only with a grace, at the purge's pace otherwise.
 */
export function waitingInboxSql(names: InboxNames): string {
  return `SELECT id::text AS id, routing_key, type FROM ${names.inboxTable}
WHERE status = 'pending' AND handler = $1 AND id > $3::bigint ORDER BY id LIMIT $2::int`;
}

/** A waiting row as listed. */
export interface WaitingInboxRow {
  id: string;
  routing_key: string;
  type: string | null;
}

/**
 * Moves waiting rows to the handlers that take them, in one statement (so one transaction): the placeholder row is
 * deleted and one pending row per handler inserted, due now, attempts 0. $1: placeholder; $2, $3, $4: one element per
 * (row, handler): the row's id, the handler, and whether it is the row's first handler.
 * - The first handler's row keeps the placeholder row's id: ids are the order a key's rows are claimed in (claim.ts),
 *   so the message keeps its place among the later messages of its key. Other handlers' rows draw new ids (an id is
 *   unique); their place in a key is the time of the move. The DELETE and the INSERT of the same id in one statement
 *   pass the primary key: the unique check sees the row deleted by this transaction.
 * - DELETE ... WHERE status = 'pending' AND handler = $1: two inboxes moving the same row at once take its row lock
 *   in turn; the second deletes nothing, so inserts nothing (the join on `moved`). A row that expired meanwhile (dead)
 *   stays dead.
 * - ON CONFLICT (message_id, handler) DO NOTHING: the message may already be there for that handler (published
 *   again, and stored by the newer inbox directly); the dedupe keeps one.
 * - Ordered by (message_id, handler) into the unique index, as the receiver's INSERT does (insert.ts: no deadlock
 *   between two INSERTs taking the same keys).
 */
export function rerouteInboxSql(names: InboxNames): string {
  return `
WITH moved AS (
  DELETE FROM ${names.inboxTable} WHERE id = ANY($2::bigint[]) AND status = 'pending' AND handler = $1
  RETURNING *
), target AS (
  SELECT * FROM unnest($2::bigint[], $3::text[], $4::bool[]) AS t(id, handler, first)
)
INSERT INTO ${names.inboxTable} (id, message_id, handler, exchange, routing_key, payload, body, headers, type,
                                  correlation_id, status, attempts, available_at, received_at, ordering_key)
SELECT CASE WHEN t.first THEN m.id
            ELSE nextval((SELECT pg_get_serial_sequence(${quoteLiteral(names.inboxTable)}, 'id'))) END,
       m.message_id, t.handler, m.exchange, m.routing_key, m.payload, m.body, m.headers, m.type, m.correlation_id,
       'pending', 0, ${names.now}, m.received_at, m.ordering_key
FROM moved m JOIN target t ON t.id = m.id
ORDER BY m.message_id, t.handler
ON CONFLICT (message_id, handler) DO NOTHING
RETURNING id::text AS id`;
}

/**
 * Waiting rows whose grace is over (available_at, set to received + grace at receive, has passed) become dead with
 * the reason in last_error; attempts stay 0 (no handler ever ran). $1: placeholder, $2: the reason. They stay under
 * the placeholder: `dead-letters --inbox --handler <placeholder>` lists them, and a retry makes them wait once more
 * (due now: the next pass moves them if an inbox has a handler by then, else they are dead again).
 */
export function expireInboxWaitingSql(names: InboxNames): string {
  return `
UPDATE ${names.inboxTable} SET status = 'dead', last_error = $2
WHERE status = 'pending' AND handler = $1 AND available_at <= ${names.now}
RETURNING id::text AS id, message_id`;
}

// `prisma-outbox dead-letters --inbox` on the inbox's dead rows (status 'dead'): list, count, retry, purge. The WHERE
// clause comes from dead-letter-filter.ts (bind parameters only); every statement adds status = 'dead' itself, so no
// filter can reach a pending or processed row.

import type { InboxNames } from "../names.js";
import type { FilterSql } from "../ops/dead-letter-filter.js";

const COLUMNS = `id::text AS id, message_id, handler, exchange, routing_key, type, correlation_id, attempts, last_error,
  received_at, payload`;

/**
 * Invalid deliveries (no message id, a body that is not JSON, or no handler for them) are stored dead with handler
 * '': no handler can take them, so a retry would only make them dead again. Retry leaves them; purge deletes them.
 */
const RETRYABLE = "status = 'dead' AND handler <> ''";

/** The newest arrivals first. $last: limit. */
export function listInboxDeadSql(names: InboxNames, filter: FilterSql, retryOnly = false): string {
  return `SELECT ${COLUMNS} FROM ${names.inboxTable} WHERE ${retryOnly ? RETRYABLE : "status = 'dead'"} AND ${filter.where}
ORDER BY received_at DESC, id DESC LIMIT $${filter.params.length + 1}::int`;
}

export function countInboxDeadSql(names: InboxNames, filter: FilterSql, retryOnly = false): string {
  return `SELECT count(*)::int AS count FROM ${names.inboxTable}
WHERE ${retryOnly ? RETRYABLE : "status = 'dead'"} AND ${filter.where}`;
}

/**
 * Back to pending, due now, with attempts reset, so the handler gets its full `maxAttempts` again; last_error stays
 * (the reason it died) until the next attempt replaces or clears it. The inbox's sweeper finds the rows on its next
 * pass (no NOTIFY: the inbox does not LISTEN). Returns the number retried.
 */
export function retryInboxDeadSql(names: InboxNames, filter: FilterSql): string {
  return `WITH retried AS (
  UPDATE ${names.inboxTable} SET status = 'pending', attempts = 0, available_at = ${names.now}
  WHERE ${RETRYABLE} AND ${filter.where}
  RETURNING 1
)
SELECT count(*)::int AS count FROM retried`;
}

export function purgeInboxDeadSql(names: InboxNames, filter: FilterSql): string {
  return `WITH purged AS (DELETE FROM ${names.inboxTable} WHERE status = 'dead' AND ${filter.where} RETURNING 1)
SELECT count(*)::int AS count FROM purged`;
}

/** A dead inbox row as listed. */
export interface InboxDeadRow {
  id: string;
  message_id: string | null;
  handler: string;
  exchange: string;
  routing_key: string;
  type: string | null;
  correlation_id: string | null;
  attempts: number;
  last_error: string | null;
  received_at: Date;
  payload: unknown;
}

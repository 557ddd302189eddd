import type { OutboxNames } from "../names.js";

/**
 * Puts back, in the claiming transaction, the claimed rows whose publish the broker refused (returned as
 * unroutable, or nacked), with one more attempt, a later available_at (backoff, from the relay's clock: names.now, the
 * one the claims compare with) and the error. The rest of the batch
 * stays deleted: those messages were confirmed, and rolling them back would publish them twice.
 * The rows travel as one JSON array (json_to_recordset) so that any number of them is one statement; the payload
 * goes as text and is cast back, so its bytes stay as written. The row keeps its id: a keyed row keeps its place at
 * the head of its key, so the key's later rows still wait for it (claim.ts). $1: json array of rows
 */
export function requeueMessagesSql(names: OutboxNames): string {
  return `
INSERT INTO ${names.outboxTable} (id, message_id, exchange, routing_key, payload, headers, type, correlation_id, attempts,
                             available_at, last_error, created_at, ordering_key)
SELECT r.id, r.message_id, r.exchange, r.routing_key, r.payload::json, r.headers, r.type, r.correlation_id, r.attempts,
       ${names.now} + make_interval(secs => r.delay_ms / 1000), r.last_error, to_timestamp(r.created_at / 1000),
       r.ordering_key
FROM json_to_recordset($1::json) AS r(id bigint, message_id uuid, exchange text, routing_key text, payload text,
  headers jsonb, type text, correlation_id text, attempts int, delay_ms float8, last_error text, created_at float8,
  ordering_key text)`;
}

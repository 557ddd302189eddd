import type { OutboxNames } from "../names.js";

/**
 * Moves claimed rows that failed their last allowed attempt to the dead-letter table, in the claiming transaction
 * (they are already deleted from the outbox by the claim). ON CONFLICT: a message moved back to the outbox by hand
 * and failing again replaces its earlier dead letter instead of blocking the relay. The ordering key goes with it:
 * with keyAfterDeadLetter "stop" the dead letter holds back its key's later rows (claim.ts).
 * $1: json array of rows
 */
export function deadLetterMessagesSql(names: OutboxNames): string {
  return `
INSERT INTO ${names.deadLetterTable} (id, message_id, exchange, routing_key, payload, headers, type, correlation_id,
                                  attempts, last_error, created_at, ordering_key)
SELECT r.id, r.message_id, r.exchange, r.routing_key, r.payload::json, r.headers, r.type, r.correlation_id, r.attempts,
       r.last_error, to_timestamp(r.created_at / 1000), r.ordering_key
FROM json_to_recordset($1::json) AS r(id bigint, message_id uuid, exchange text, routing_key text, payload text,
  headers jsonb, type text, correlation_id text, attempts int, last_error text, created_at float8, ordering_key text)
ON CONFLICT (message_id) DO UPDATE SET id = excluded.id, attempts = excluded.attempts, ordering_key = excluded.ordering_key,
  last_error = excluded.last_error, failed_at = ${names.now}`;
}

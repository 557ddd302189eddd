import { INBOX_TABLE } from "./names.js";

/** One row to store: a delivery for one handler (or, with status 'dead', a delivery no handler can take). */
export interface InboxRowInput {
  messageId: string | null;
  handler: string;
  exchange: string;
  routingKey: string;
  /** JSON text of the body, or null when the body was not JSON. */
  payload: string | null;
  /** The raw body, kept only when it was not JSON. */
  body: Buffer | null;
  /** JSON text of the AMQP headers, or null. */
  headers: string | null;
  type: string | null;
  correlationId: string | null;
  status: "pending" | "dead";
  lastError: string | null;
  /** The ordering key (AMQP header x-ordering-key), or null. */
  key: string | null;
}

/**
 * Stores the deliveries of one receive batch in one statement, before the broker ack.
 * - ON CONFLICT (message_id, handler) DO NOTHING is the deduplication: a redelivered or re-published message finds
 *   its rows and adds nothing, so it is acknowledged and dropped. DO NOTHING (unlike DO UPDATE) also accepts the same
 *   key twice within the statement (a duplicate inside one batch). Rows without a message id (NULL) never conflict.
 * - unnest() over one array per column: the same statement text and 12 parameters for any batch size.
 * - RETURNING gives the ids of the rows actually inserted and pending, for the in-process hand-off to the processor.
 */
export const INSERT_INBOX_MESSAGES_SQL = `
INSERT INTO ${INBOX_TABLE} (message_id, handler, exchange, routing_key, payload, body, headers, type, correlation_id,
                            status, last_error, ordering_key)
SELECT message_id, handler, exchange, routing_key, payload::json, body, headers::jsonb, type, correlation_id, status,
       last_error, ordering_key
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[], $12::text[])
  WITH ORDINALITY AS t(message_id, handler, exchange, routing_key, payload, body, headers, type, correlation_id, status,
                       last_error, ordering_key, n)
ORDER BY n
ON CONFLICT (message_id, handler) DO NOTHING
RETURNING id::text AS id, status`;

export function insertInboxParams(rows: readonly InboxRowInput[]): unknown[] {
  return [
    rows.map((r) => r.messageId),
    rows.map((r) => r.handler),
    rows.map((r) => r.exchange),
    rows.map((r) => r.routingKey),
    rows.map((r) => r.payload),
    rows.map((r) => r.body),
    rows.map((r) => r.headers),
    rows.map((r) => r.type),
    rows.map((r) => r.correlationId),
    rows.map((r) => r.status),
    rows.map((r) => r.lastError),
    rows.map((r) => r.key),
  ];
}

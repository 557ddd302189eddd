import type { NormalizedMessage } from "../message/message.js";
import type { OutboxNames } from "./names.js";

/**
 * Inserts any number of messages in one statement and one round trip, and signals relays in other processes.
 *
 * - unnest() over one array per column keeps the statement text and its 8 parameters the same whatever the batch
 *   size, so PostgreSQL plans it once, and it never meets the 65,535-parameter limit of a multi-row VALUES list.
 * - pg_notify rides in the same statement (a CTE joined to the insert so that it runs exactly once). PostgreSQL
 *   delivers a notification only when its transaction commits, so a rolled-back write wakes nobody, and several
 *   notifications with the same payload in one transaction are folded into one.
 * - WITH ORDINALITY + ORDER BY keeps the ids (publish order) in the order the messages were given.
 * - available_at falls back to now(), the transaction's start time, which is also created_at's default.
 * - The table and the channel are those of the schema the outbox lives in (names.ts).
 */
export function insertMessagesSql(names: OutboxNames): string {
  return `
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::timestamptz[])
    WITH ORDINALITY AS t(message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at, n)
), inserted AS (
  INSERT INTO ${names.outboxTable} (message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at)
  SELECT message_id, exchange, routing_key, payload::json, headers::jsonb, type, correlation_id,
         coalesce(available_at, now())
  FROM input ORDER BY n
  RETURNING id
), notified AS (
  SELECT pg_notify('${names.notifyChannel}', '')
)
SELECT inserted.id::text AS id FROM inserted, notified`;
}

/** The parameters of insertMessagesSql(), one array per column. */
export function insertMessagesParams(messages: readonly NormalizedMessage[]): unknown[] {
  return [
    messages.map((m) => m.messageId),
    messages.map((m) => m.exchange),
    messages.map((m) => m.routingKey),
    messages.map((m) => m.payload),
    messages.map((m) => m.headers),
    messages.map((m) => m.type),
    messages.map((m) => m.correlationId),
    messages.map((m) => m.availableAt?.toISOString() ?? null),
  ];
}

import type { NormalizedMessage } from "../message/message.js";
import type { OutboxNames } from "./names.js";

/**
 * Inserts any number of messages in one statement and one round trip.
 *
 * - unnest() over one array per column keeps the statement text and its 8 parameters the same whatever the batch
 *   size, so PostgreSQL plans it once, and it never meets the 65,535-parameter limit of a multi-row VALUES list.
 * - WITH ORDINALITY + ORDER BY keeps the ids in the order the messages were given.
 * - available_at falls back to clock_timestamp(), the time of the insert, not now() (the transaction's start): the
 *   relay claims in (available_at, id) order, and a transaction that started first but wrote after another one
 *   committed (it waited for that one's row lock, say) must not have its message claimed first. Truncated to the
 *   column's milliseconds, never rounded up: a relay whose claim starts within half a millisecond of the insert
 *   (the in-process hand-off) would otherwise find the row not yet due, and leave it to the sweeper. created_at keeps
 *   now().
 * - The table and the channel are those of the schema the outbox lives in (names.ts).
 *
 * `notify: false` (the default wake-up: relays in other processes are woken after commit, see
 * src/extension/notifier.ts) is the insert alone. `notify: true` (for `notify: "in-transaction"`) adds pg_notify in
 * the same statement (a CTE joined to the insert so that it runs exactly once). PostgreSQL delivers a notification
 * only when its transaction commits, so a rolled-back write wakes nobody, and the wake-up cannot be lost between
 * COMMIT and a later statement. The price: PostgreSQL serialises the commits of all notifying transactions on one
 * lock, so concurrent writers queue behind each other (see bench:write).
 */
export function insertMessagesSql(names: OutboxNames, notify: boolean): string {
  return `
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::timestamptz[])
    WITH ORDINALITY AS t(message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at, n)
), inserted AS (
  INSERT INTO ${names.outboxTable} (message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at)
  SELECT message_id, exchange, routing_key, payload::json, headers::jsonb, type, correlation_id,
         coalesce(available_at, date_trunc('milliseconds', clock_timestamp()))
  FROM input ORDER BY n
  RETURNING id
)${
    notify
      ? `, notified AS (
  SELECT pg_notify('${names.notifyChannel}', '')
)
SELECT inserted.id::text AS id FROM inserted, notified`
      : `
SELECT id::text AS id FROM inserted`
  }`;
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

// `prisma-outbox dead-letters` on the outbox's dead letters: list, count, retry (move back into the outbox), purge.
// The WHERE clause comes from dead-letter-filter.ts (bind parameters only); the tables from outboxNames(schema).
// PostgreSQL's now(), never a test clock: an operator's command has none, and a row due at now() is due on any clock
// (a test clock is never behind it: src/runtime/clock.ts).

import type { OutboxNames } from "../names.js";
import type { FilterSql } from "./dead-letter-filter.js";

const COLUMNS = `id::text AS id, message_id::text AS message_id, exchange, routing_key, type, correlation_id, attempts,
  last_error, created_at, failed_at, payload`;

/** The newest failures first (what an operator looks at after an incident). $last: limit. */
export function listDeadLettersSql(names: OutboxNames, filter: FilterSql): string {
  return `SELECT ${COLUMNS} FROM ${names.deadLetterTable} WHERE ${filter.where}
ORDER BY failed_at DESC, id DESC LIMIT $${filter.params.length + 1}::int`;
}

export function countDeadLettersSql(names: OutboxNames, filter: FilterSql): string {
  return `SELECT count(*)::int AS count FROM ${names.deadLetterTable} WHERE ${filter.where}`;
}

/**
 * A dead letter whose message id is back in the outbox already (moved back by hand, or by a retry still waiting to be
 * published) is left where it is: the outbox's unique message_id would refuse it, and the message is queued anyway.
 * Retry and its dry run use the same condition, so that the dry run counts what the retry would move.
 */
function retryable(names: OutboxNames, filter: FilterSql): string {
  return `${filter.where} AND NOT EXISTS (SELECT 1 FROM ${names.outboxTable} o WHERE o.message_id = d.message_id)`;
}

export function countRetryableSql(names: OutboxNames, filter: FilterSql): string {
  return `SELECT count(*)::int AS count FROM ${names.deadLetterTable} d WHERE ${retryable(names, filter)}`;
}

export function listRetryableSql(names: OutboxNames, filter: FilterSql): string {
  return `SELECT ${COLUMNS} FROM ${names.deadLetterTable} d WHERE ${retryable(names, filter)}
ORDER BY failed_at DESC, id DESC LIMIT $${filter.params.length + 1}::int`;
}

/**
 * Moves the selected dead letters back into the outbox in one statement (the caller wraps it, and the NOTIFY that
 * wakes the relays, in one transaction): DELETE ... RETURNING feeds the INSERT, so a row is either a dead letter or
 * queued, never both and never neither. What is kept: message_id (consumers deduplicate on it), the message itself,
 * created_at, and last_error (the reason it died, until the next attempt replaces it). What is reset: attempts 0,
 * available_at now(). The id is a new one from the outbox's sequence, not the dead letter's: the relay's claim walks
 * (available_at, id) and may resume after its last key during a backlog; a fresh id sorts after the rows queued
 * before it instead of among them. ON CONFLICT DO NOTHING covers a writer that queued the same message id between the
 * NOT EXISTS check and the insert: the message is queued once either way. Returns the number moved.
 * A dead letter with an ordering key goes back with its key and its own id instead: the head of its key again, it is
 * published before the key's later messages, which its dead letter was holding back (keyAfterDeadLetter "stop").
 */
export function retryDeadLettersSql(names: OutboxNames, filter: FilterSql): string {
  return `
WITH moved AS (
  DELETE FROM ${names.deadLetterTable} d WHERE ${retryable(names, filter)}
  RETURNING d.id, d.message_id, d.exchange, d.routing_key, d.payload, d.headers, d.type, d.correlation_id,
            d.last_error, d.created_at, d.ordering_key
), queued AS (
  INSERT INTO ${names.outboxTable} (message_id, exchange, routing_key, payload, headers, type, correlation_id, attempts,
                                    available_at, last_error, created_at)
  SELECT message_id, exchange, routing_key, payload, headers, type, correlation_id, 0, now(), last_error, created_at
  FROM moved WHERE ordering_key IS NULL
  ON CONFLICT (message_id) DO NOTHING
  RETURNING 1
), queued_keyed AS (
  INSERT INTO ${names.outboxTable} (id, message_id, exchange, routing_key, payload, headers, type, correlation_id,
                                    attempts, available_at, last_error, created_at, ordering_key)
  SELECT id, message_id, exchange, routing_key, payload, headers, type, correlation_id, 0, now(), last_error,
         created_at, ordering_key
  FROM moved WHERE ordering_key IS NOT NULL
  ON CONFLICT (message_id) DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM moved)::int AS moved,
       ((SELECT count(*) FROM queued) + (SELECT count(*) FROM queued_keyed))::int AS queued`;
}

/** Deletes the selected dead letters for good. Returns the number deleted. */
export function purgeDeadLettersSql(names: OutboxNames, filter: FilterSql): string {
  return `WITH purged AS (DELETE FROM ${names.deadLetterTable} WHERE ${filter.where} RETURNING 1)
SELECT count(*)::int AS count FROM purged`;
}

/** A dead letter as listed. */
export interface DeadLetterRow {
  id: string;
  message_id: string;
  exchange: string;
  routing_key: string;
  type: string | null;
  correlation_id: string | null;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  failed_at: Date;
  payload: unknown;
}

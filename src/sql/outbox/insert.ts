import { createHash } from "node:crypto";
import type { NormalizedMessage } from "../../message/message.js";
import type { OutboxNames } from "../names.js";

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
 * - Both stay on the database's time even when the relay runs on the test kit's clock (names.now, which the write side
 *   never uses: the app's client does not know the relay's clock). That clock is now() plus an offset that only grows,
 *   so rows written on the database's time are earlier than its now: simply due, as a fresh row is for a relay on
 *   now(). A row's `availableAt` given by the writer is compared with the relay's clock as it is.
 * - The table and the channel are those of the schema the outbox lives in (names.ts).
 *
 * `notify: false` (the default wake-up: relays in other processes are woken after commit, see
 * src/extension/notifier.ts) is the insert alone. `notify: true` (for `notify: "in-transaction"`) adds pg_notify in
 * the same statement (a CTE joined to the insert so that it runs exactly once). PostgreSQL delivers a notification
 * only when its transaction commits, so a rolled-back write wakes nobody, and the wake-up cannot be lost between
 * COMMIT and a later statement. The price: PostgreSQL serialises the commits of all notifying transactions on one
 * lock, so concurrent writers queue behind each other (see bench:write).
 *
 * `keys` (keyShape() of the messages): "none", the plain insert; "one" (one distinct key), oneKeyInsertSql; "many"
 * (or `true`), keyedInsertSql. Both keyed statements take the parameters of insertKeyedMessagesParams().
 */
export function insertMessagesSql(names: OutboxNames, notify: boolean, keys: KeyShape | boolean = "none"): string {
  const shape = keys === true ? "many" : keys === false ? "none" : keys;
  if (shape === "one") return oneKeyInsertSql(names, notify);
  return shape === "many" ? keyedInsertSql(names, notify) : plainInsertSql(names, notify);
}

/**
 * One message without a key, the most common write (an event per transaction): the same insert as plainInsertSql
 * with a VALUES row instead of the unnest, ordinality and sort, which PostgreSQL plans in a fraction of the time
 * (planning is most of the statement's cost for one row: docs/performance.md, "Latency at half the sustained rate";
 * every execution is planned anew, Prisma sends unnamed statements). Parameters: insertSingleMessageParams().
 */
export function insertSingleMessageSql(names: OutboxNames, notify: boolean): string {
  return `
WITH inserted AS (
  INSERT INTO ${names.outboxTable} (message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at)
  VALUES ($1::uuid, $2::text, $3::text, $4::text::json, $5::text::jsonb, $6::text, $7::text,
          coalesce($8::timestamptz, date_trunc('milliseconds', clock_timestamp())))
  RETURNING id
)${notifyTail(names, notify)}`;
}

/** The keys of a statement's messages: none, one distinct key (any number of messages), or several. */
export type KeyShape = "none" | "one" | "many";

function plainInsertSql(names: OutboxNames, notify: boolean): string {
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
)${notifyTail(names, notify)}`;
}

function notifyTail(names: OutboxNames, notify: boolean): string {
  return notify
    ? `, notified AS (
  SELECT pg_notify('${names.notifyChannel}', '')
)
SELECT inserted.id::text AS id FROM inserted, notified`
    : `
SELECT id::text AS id FROM inserted`;
}

/**
 * The insert of messages of which at least one has an ordering key (messages without one keep the plain statement
 * above, unchanged). Per key, ids must follow commit order: the relay publishes a key's messages in id order, and two
 * transactions writing the same key could otherwise draw their ids in one order and commit in the other. So, in the
 * same statement (no extra round trip), before any id is drawn:
 * - pg_advisory_xact_lock on each distinct key of the statement, held until COMMIT or ROLLBACK: a second writer of
 *   the key waits here until the first one ends, and only then draws its ids, which are therefore above the first
 *   one's. Writers of other keys take other locks and do not wait (a hash collision of two keys only serialises them).
 * - The locks are taken in the order of their lock ids, so two writers of several keys each in one statement cannot
 *   deadlock (several statements with keys in different orders can, like row locks: PostgreSQL then aborts one).
 * - Lock before nextval: the locks are an uncorrelated scalar subquery in WHERE, which PostgreSQL runs once as a
 *   one-time filter before the first row leaves the scan; the ids (the column default, nextval) are computed above
 *   the sort of the rows, so after every lock (test/sql/ordering-key.test.ts checks it with a second writer).
 * - The lock id is hashtextextended(key, seed), seeded per schema: the 64-bit advisory lock space is shared with the
 *   application's own advisory locks, which only a collision could make wait.
 */
function keyedInsertSql(names: OutboxNames, notify: boolean): string {
  return `
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::timestamptz[], $9::text[])
    WITH ORDINALITY AS t(message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at,
                         ordering_key, n)
), inserted AS (
  INSERT INTO ${names.outboxTable} (message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at,
                                    ordering_key)
  SELECT message_id, exchange, routing_key, payload::json, headers::jsonb, type, correlation_id,
         coalesce(available_at, date_trunc('milliseconds', clock_timestamp())), ordering_key
  FROM input
  WHERE (SELECT count(locked) FROM (
           SELECT pg_advisory_xact_lock(lock_id) AS locked FROM (
             SELECT DISTINCT hashtextextended(ordering_key, ${lockSeed(names)}) AS lock_id FROM input
             WHERE ordering_key IS NOT NULL ORDER BY lock_id OFFSET 0
           ) sorted
         ) locks) >= 0
  ORDER BY n
  RETURNING id
)${notifyTail(names, notify)}`;
}

/**
 * The keyed insert when the messages have one distinct key (a single keyed message, or several of one aggregate):
 * the same lock as keyedInsertSql, taken the same way (an uncorrelated scalar subquery in WHERE: a one-time filter,
 * evaluated before the scan yields its first row, so before any nextval), on the one key, without the distinct
 * sorted key list. That list, and the input CTE it reads (which then becomes a materialized CTE scan), cost more
 * than the lock itself, so a write of one key skips them. Same parameters as keyedInsertSql: the key is the first
 * non-null element of the key array.
 */
function oneKeyInsertSql(names: OutboxNames, notify: boolean): string {
  return `
WITH inserted AS (
  INSERT INTO ${names.outboxTable} (message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at,
                                    ordering_key)
  SELECT message_id, exchange, routing_key, payload::json, headers::jsonb, type, correlation_id,
         coalesce(available_at, date_trunc('milliseconds', clock_timestamp())), ordering_key
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::timestamptz[], $9::text[])
    WITH ORDINALITY AS t(message_id, exchange, routing_key, payload, headers, type, correlation_id, available_at,
                         ordering_key, n)
  WHERE (SELECT pg_advisory_xact_lock(hashtextextended((array_remove($9::text[], NULL))[1], ${lockSeed(names)})))
    IS NOT NULL
  ORDER BY n
  RETURNING id
)${notifyTail(names, notify)}`;
}

/** The seed of the key locks of one schema: an integer of 48 bits, so it is written into the text safely. */
export function lockSeed(names: OutboxNames): number {
  return createHash("sha256").update(`prisma-outbox:${names.schema}`).digest().readUIntBE(0, 6);
}

/** Which insert the messages take (see insertMessagesSql). */
export function keyShape(messages: readonly NormalizedMessage[]): KeyShape {
  let first: string | null = null;
  for (const m of messages) {
    if (m.key === null) continue;
    if (first === null) first = m.key;
    else if (m.key !== first) return "many";
  }
  return first === null ? "none" : "one";
}

/** One message's values in the order of the statements' parameters $1-$8. */
function messageValues(m: NormalizedMessage): unknown[] {
  return [
    m.messageId,
    m.exchange,
    m.routingKey,
    m.payload,
    m.headers,
    m.type,
    m.correlationId,
    m.availableAt?.toISOString() ?? null,
  ];
}

/** The parameters of insertMessagesSql(), one array per column. */
export function insertMessagesParams(messages: readonly NormalizedMessage[]): unknown[] {
  const rows = messages.map(messageValues);
  return Array.from({ length: 8 }, (_, column) => rows.map((row) => row[column]));
}

/** The parameters of insertSingleMessageSql(): one message's values, not arrays. */
export const insertSingleMessageParams: (message: NormalizedMessage) => unknown[] = messageValues;

/** The parameters of the keyed insert: those of insertMessagesParams() and the keys. */
export function insertKeyedMessagesParams(messages: readonly NormalizedMessage[]): unknown[] {
  return [...insertMessagesParams(messages), messages.map((m) => m.key)];
}
